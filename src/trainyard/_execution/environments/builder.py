"""Build uv virtual environments once per content hash and reuse them: :class:`EnvironmentBuilder`.

The cache layout and its entries are in :mod:`.cache`; the processes a build runs (uv, the import
check, freeze) in :mod:`.uv`. A cache hit reads one small JSON file and checks two paths, so a warm
run starts in milliseconds.

**Trainyard runtime injection.** Every environment can ``import trainyard`` without listing it:
a ``.pth`` file puts ``<prefix>/trainyard-runtime`` on ``sys.path``; that directory holds a
symlink to the building side's ``trainyard`` package, and nothing of trainyard's dependencies is
installed (the in-run client needs only the standard library, see :mod:`.runtime`). A
symlink, not a copy: the run sees exactly the code that submitted it (including an editable
checkout under development, whose changes would otherwise hide behind an unchanged
``__version__``), and it costs nothing per environment. The hash includes trainyard's version and
package location, so another trainyard install gets its own environments.

Example::

    from pathlib import Path
    import os, sys
    from trainyard._execution.environments import EnvSpec, EnvironmentBuilder, read_pip_config
    builder = EnvironmentBuilder(Path("/tmp/envs"), read_pip_config(os.environ))
    built = builder.build(EnvSpec.from_requirements(["six==1.16.0"]), log=sys.stdout)
    print(built.python, built.cached, built.resolved["six"])
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from trainyard.exceptions import EnvironmentBuildError, EnvironmentNotFound, ValidationError

from .cache import (
    MARKER,
    META_DIR,
    RUNTIME_DIR,
    BuiltEnvironment,
    CachedEnvironment,
    FileLock,
    clear_leftovers,
    discard,
    iter_sizes,
    parse_freeze,
    read_entry,
    read_hit,
    size_bytes,
)
from .pipconfig import PipConfig, read_pip_config
from .runtime import TrainyardRuntime
from .spec import EnvSpec, python_version_matches, spec_hash
from .uv import (
    LogSink,
    UvProcesses,
    emitter,
    ensure_bytecode,
    ensure_entry_points,
    find_uv,
    inject_runtime,
)

if TYPE_CHECKING:
    from trainyard.settings import Settings

__all__ = [
    "MARKER",
    "RUNTIME_DIR",
    "BuiltEnvironment",
    "CachedEnvironment",
    "EnvironmentBuilder",
    "LogSink",
    "default_builder",
    "iter_sizes",
    "parse_freeze",
    "size_bytes",
]


class EnvironmentBuilder:
    """Builds :class:`~.spec.EnvSpec` s into cached uv virtual environments.

    ``pip_config`` is the host's pip configuration (:func:`~.pipconfig.read_pip_config`), carried to
    uv. ``uv_bin`` defaults to the ``uv`` shipped with the ``uv`` Python package. ``environ`` is
    the base environment of the uv processes (default: this process's). ``python`` is the
    interpreter used when the spec asks for the running Python version (default
    ``sys.executable``). ``runtime`` is the trainyard runtime to inject (default: this process's).

    Thread/process safety: concurrent ``build`` calls for the same spec build it once (file lock);
    different specs build in parallel.

    Example::

        builder = EnvironmentBuilder(Path("~/.trainyard/envs").expanduser(), read_pip_config(os.environ))
        built = builder.build(spec, log=print)
    """

    def __init__(
        self,
        cache_dir: Path,
        pip_config: PipConfig,
        uv_bin: str | None = None,
        *,
        uv_cache_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        python: str | None = None,
        runtime: TrainyardRuntime | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.pip_config = pip_config
        self._uv_bin = uv_bin
        self._uv_cache_dir = uv_cache_dir
        self._environ = dict(environ) if environ is not None else None
        self._python = python or sys.executable
        self._runtime = runtime

    # ------------------------------------------------------------------ public API
    @property
    def runtime(self) -> TrainyardRuntime:
        """The trainyard runtime injected into built environments."""
        return self._runtime or TrainyardRuntime.current()

    @property
    def uv_bin(self) -> str:
        """Path of the uv executable."""
        if self._uv_bin is None:
            self._uv_bin = find_uv()
        return self._uv_bin

    def _processes(self) -> UvProcesses:
        return UvProcesses(
            self.uv_bin, cwd=self.cache_dir, environ=self._environ, uv_cache_dir=self._uv_cache_dir
        )

    def spec_hash(self, spec: EnvSpec) -> str:
        """The cache key of ``spec`` with this builder's runtime."""
        return spec_hash(spec, self.runtime)

    def lookup(self, spec: EnvSpec) -> BuiltEnvironment | None:
        """The cached environment for ``spec`` without building, or ``None``."""
        start = time.monotonic()
        if spec.user_managed:
            return None
        digest = self.spec_hash(spec)
        return read_hit(self.cache_dir / digest[:16], digest, start)

    def build(self, spec: EnvSpec, log: LogSink | None = None) -> BuiltEnvironment:
        """Return the environment for ``spec``, building it unless the cache has it.

        uv's output goes to ``log`` line by line as it is written (a text stream or a callable).
        Raises :class:`~trainyard.exceptions.EnvironmentBuildError` carrying uv's message (and a
        hint when the cause is known, such as missing MPI headers) when the requirements cannot be
        resolved or installed; nothing is left behind then.

        Example::

            built = builder.build(EnvSpec.from_requirements(["six==1.16.0"]), log=print)
        """
        start = time.monotonic()
        emit = emitter(log)
        if spec.user_managed:
            return self._user_managed(spec, emit, start)
        digest = self.spec_hash(spec)
        key = digest[:16]
        final = self.cache_dir / key
        for notice in spec.notices:
            emit(f"Notice: {notice}")
        hit = read_hit(final, digest, start)
        if hit is not None:
            emit(f"Environment {key} reused from the cache: {final}")
            with contextlib.suppress(OSError):
                ensure_entry_points(hit.prefix, self.runtime)
                ensure_bytecode(hit.prefix, self.runtime, emit)
            return hit
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.cache_dir / f"{key}.lock")
        if not lock.acquire(blocking=False):
            emit(f"Environment {key} is being built by another process; waiting for it.")
            lock.acquire()
        try:
            hit = read_hit(final, digest, start)
            if hit is not None:
                emit(f"Environment {key} was built by another process: {final}")
                return hit
            return self._build_locked(spec, digest, final, emit, start)
        finally:
            lock.release()

    def list_environments(self) -> list[CachedEnvironment]:
        """Complete environments in the cache, most recently used first."""
        out: list[CachedEnvironment] = []
        if not self.cache_dir.is_dir():
            return out
        for entry in self.cache_dir.iterdir():
            if "." in entry.name or not entry.is_dir():
                continue
            info = read_entry(entry)
            if info is not None:
                out.append(info)
        out.sort(key=lambda e: e.last_used_at, reverse=True)
        return out

    def get(self, hash_prefix: str) -> CachedEnvironment:
        """The cached environment whose hash starts with ``hash_prefix`` (at least 4 characters).

        Raises :class:`~trainyard.exceptions.EnvironmentNotFound`, or
        :class:`~trainyard.exceptions.ValidationError` when the prefix is ambiguous.
        """
        prefix = hash_prefix.strip().lower()
        if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
            raise ValidationError(
                f"environment hash {hash_prefix!r} must be at least 4 hex characters."
            )
        matches = [e for e in self.list_environments() if e.spec_hash.startswith(prefix)]
        if not matches:
            raise EnvironmentNotFound(f"no cached environment has a hash starting with {prefix!r}.")
        if len(matches) > 1:
            raise ValidationError(
                f"hash prefix {prefix!r} matches {len(matches)} environments; give more characters."
            )
        return matches[0]

    def remove(self, hash_prefix: str) -> bool:
        """Delete one cached environment; ``False`` when none matches."""
        try:
            entry = self.get(hash_prefix)
        except EnvironmentNotFound:
            return False
        lock = FileLock(self.cache_dir / f"{entry.spec_hash[:16]}.lock")
        lock.acquire()
        try:
            discard(entry.prefix)
        finally:
            lock.release()
        return True

    def prune(
        self, older_than_days: float | None = None, keep_hashes: Sequence[str] = ()
    ) -> list[str]:
        """Delete environments not used for ``older_than_days`` (all when ``None``), except those
        whose hash starts with one of ``keep_hashes``; also clears leftovers of crashed builds.
        Returns the full hashes removed.

        Example::

            builder.prune(older_than_days=30)
        """
        removed: list[str] = []
        cutoff = (
            None if older_than_days is None else datetime.now(UTC) - timedelta(days=older_than_days)
        )
        keep = tuple(k.lower() for k in keep_hashes if k)
        for entry in self.list_environments():
            if keep and entry.spec_hash.startswith(keep):
                continue
            if cutoff is not None and entry.last_used_at >= cutoff:
                continue
            if self.remove(entry.spec_hash):
                removed.append(entry.spec_hash)
        clear_leftovers(self.cache_dir)
        return removed

    # ------------------------------------------------------------------ building
    def _build_locked(
        self, spec: EnvSpec, digest: str, final: Path, emit: Callable[[str], None], start: float
    ) -> BuiltEnvironment:
        key = digest[:16]
        tmp = self.cache_dir / f"{key}.tmp-{secrets.token_hex(4)}"
        transcript: list[str] = [f"Notice: {notice}" for notice in spec.notices]

        def record(line: str) -> None:
            transcript.append(line)
            emit(line)

        runtime = self.runtime
        uv = self._processes()
        try:
            record(f"Building environment {key} (Python {spec.python_version}) in {final}")
            self._create_venv(uv, spec, tmp, record, key)
            meta = tmp / META_DIR
            meta.mkdir()
            requirements = list(spec.requirements)
            (meta / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
            cfg = self.pip_config.with_spec(spec)
            cmd = [self.uv_bin, "pip", "install", "--python", str(tmp / "bin" / "python")]
            cmd += cfg.uv_args()
            if spec.build_constraints:
                constraints = meta / "build-constraints.txt"
                constraints.write_text("\n".join(spec.build_constraints) + "\n", encoding="utf-8")
                cmd += ["--build-constraint", str(constraints)]
            cmd += ["-r", str(meta / "requirements.txt")]
            uv.run(cmd, record, "uv pip install", key, extra_env=cfg.uv_env())
            inject_runtime(tmp, runtime)
            python_version = uv.check_import(tmp, runtime, key)
            ensure_bytecode(tmp, runtime, record)
            resolved = uv.freeze(tmp / "bin" / "python", key)
            resolved["trainyard"] = runtime.version
            seconds = time.monotonic() - start
            record(f"Environment {key} built in {seconds:.1f} s ({len(resolved)} distributions).")
            (meta / "build.log").write_text("\n".join(transcript) + "\n", encoding="utf-8")
            marker = {
                "format": 1,
                "spec_hash": digest,
                "spec": spec.to_dict(),
                "notices": list(spec.notices),
                "runtime": runtime.to_dict(),
                "python_version": python_version,
                "resolved": resolved,
                "created_at": datetime.now(UTC).isoformat(),
                "build_seconds": round(seconds, 3),
            }
            (tmp / MARKER).write_text(
                json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8"
            )
            if final.exists():
                discard(final)  # incomplete or broken leftover under the lock
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return BuiltEnvironment(
            python=final / "bin" / "python",
            prefix=final,
            spec_hash=digest,
            resolved=resolved,
            cached=False,
            seconds=time.monotonic() - start,
        )

    def _create_venv(
        self, uv: UvProcesses, spec: EnvSpec, tmp: Path, record: Callable[[str], None], key: str
    ) -> None:
        python_request = (
            self._python
            if python_version_matches(spec.python_version, platform.python_version())
            else spec.python_version
        )
        cmd = [self.uv_bin, "venv", "--relocatable", "--python", python_request, str(tmp)]
        try:
            uv.run(cmd, record, "uv venv", key)
        except EnvironmentBuildError as err:
            if python_request == self._python:
                raise
            raise EnvironmentBuildError(
                f"Python {spec.python_version} was requested by the environment and is not "
                f"available on this host (no downloads are attempted); install it, or pin the "
                f"running Python {platform.python_version()} instead.\n{err.message}",
                **err.details,
            ) from None

    # ------------------------------------------------------------------ user-managed
    def _user_managed(
        self, spec: EnvSpec, emit: Callable[[str], None], start: float
    ) -> BuiltEnvironment:
        requested = spec.interpreter_path
        if requested:
            found = requested if os.sep in requested else shutil.which(requested)
            if not found or not Path(found).exists():
                raise EnvironmentBuildError(
                    f"user-managed environment: interpreter_path {requested!r} does not exist on this host.",
                    interpreter_path=requested,
                )
            python = Path(found)
        else:
            python = Path(self._python)
        emit(f"User-managed environment: nothing is installed; using {python}.")
        if os.path.abspath(python) == os.path.abspath(sys.executable):
            resolved = {
                str(d.metadata["Name"]).lower(): d.version
                for d in metadata.distributions()
                if d.metadata["Name"]
            }
            prefix = Path(sys.prefix)
        else:
            try:
                resolved = self._processes().freeze_best_effort(python)
            except EnvironmentBuildError:  # no uv here: the packages are simply not listed
                resolved = {}
            prefix = python.parent.parent
        return BuiltEnvironment(
            python=python,
            prefix=prefix,
            spec_hash=spec_hash(spec),
            resolved=resolved,
            cached=True,
            seconds=time.monotonic() - start,
        )


def default_builder(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> EnvironmentBuilder:
    """The builder for this host: cache ``settings.env_cache_dir``, pip configuration read from
    ``environ`` (default ``os.environ``, read here at the boundary, never deeper).

    Example::

        built = default_builder().build(spec, log=print)
    """
    from trainyard.settings import load_settings

    env = os.environ if environ is None else environ
    resolved = settings or load_settings(env)
    return EnvironmentBuilder(resolved.env_cache_dir, read_pip_config(env), environ=dict(env))
