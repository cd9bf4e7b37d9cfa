"""A follower node's own interpreter for a multi-node run, from its node's environment cache.

The leader's rendezvous carries the run's environment definition (and the extra requirements the
job adds, ``mpi4py`` for MPI). Each follower builds — or finds in its node's cache
(``TRAINYARD_ENV_CACHE``, ``~/.trainyard/envs`` by default) — the same environment with the same
uv builder the leader used, so the same definition gives the same hash on every node. The build's
log is the run's ``system_logs/environment_build_node_<n>.txt``. When the follower's interpreter
lives elsewhere than the leader's (another cache folder), the ranks' variables that name the
environment (``VIRTUAL_ENV``, the front of ``PATH``) are moved over to it (:func:`retarget`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainyard._execution import runfiles


def build_log_name(node_rank: int) -> str:
    """The run's log of node ``node_rank``'s environment build."""
    return runfiles.BUILD_LOG.replace(".txt", f"_node_{node_rank}.txt")


def node_python(
    environment: Mapping[str, Any],
    extra_requirements: Sequence[str],
    variables: Mapping[str, str],
    log_path: Path,
) -> str:
    """This node's interpreter for ``environment``: this process's own for a user-managed one on
    it, else the environment built (or reused) in this node's cache, as the settings in
    ``variables`` place it. Raises what the builder raises (``EnvironmentBuildError`` …)."""
    from trainyard._execution.prepare import current_interpreter, prepare_environment
    from trainyard.settings import load_settings

    current = current_interpreter(environment)
    if current is not None:
        return current[0]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        prepared = prepare_environment(
            environment,
            load_settings(variables),
            log.write,
            extra_requirements=tuple(extra_requirements),
        )
    return prepared.python


def retarget(env: Mapping[str, str], leader_python: str, python: str) -> dict[str, str]:
    """``env`` (the leader's ranks' variables) for ranks run by ``python`` instead of
    ``leader_python``: the environment prefix in ``VIRTUAL_ENV`` and ``PATH`` replaced."""
    out = dict(env)
    if python == leader_python:
        return out
    old, new = Path(leader_python).parent.parent, Path(python).parent.parent
    if out.get("VIRTUAL_ENV") == str(old):
        out["VIRTUAL_ENV"] = str(new)
    if "PATH" in out:
        out["PATH"] = os.pathsep.join(
            str(new / "bin") if entry == str(old / "bin") else entry
            for entry in out["PATH"].split(os.pathsep)
        )
    return out


__all__ = ["build_log_name", "node_python", "retarget"]
