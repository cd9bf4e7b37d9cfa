"""The processes a build runs: uv itself, the import check, ``uv pip freeze``; and the hints a
failed build's message carries.

:class:`UvProcesses` holds what every step shares (the uv binary, the base environment, the working
folder). A failed step raises :class:`~trainyard.exceptions.EnvironmentBuildError` with the tail of
its output and, where the output shows a known cause (:data:`BUILD_HINTS`), what to do about it.

Example::

    uv = UvProcesses(uv_bin, environ=os.environ, cwd=cache_dir)
    uv.run([uv.uv_bin, "pip", "install", …], print, "uv pip install", key)
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from trainyard.exceptions import EnvironmentBuildError

from .cache import META_DIR, RUNTIME_DIR, parse_freeze
from .frameworks import OPENMPI_APT
from .runtime import TrainyardRuntime

#: Lines of a failed step's output quoted in its error.
TAIL_LINES = 80
_PTH = "_trainyard_runtime.pth"
#: trainyard's MLflow plugin entry points (the same as pyproject.toml's; a test keeps them equal).
MLFLOW_ENTRY_POINTS = """[mlflow.artifact_repository]
trainyard-artifacts = trainyard.mlflow_plugin.artifacts:TrainyardArtifactRepository

[mlflow.model_registry_store]
trainyard = trainyard.mlflow_plugin.registry:TrainyardRegistryStore

[mlflow.tracking_store]
trainyard = trainyard.mlflow_plugin.store:TrainyardStore
"""

LogSink = IO[str] | Callable[[str], None]


@dataclass(frozen=True)
class BuildHint:
    """A known cause of a failed build: when every pattern is in the output, ``advice`` is added."""

    patterns: tuple[str, ...]
    advice: str


#: Known causes of failed builds (regular expressions, case-insensitive).
BUILD_HINTS: tuple[BuildHint, ...] = (
    BuildHint(
        (r"mpi4py", r"mpi\.h|Cannot compile MPI programs|mpicc|MPI compiler"),
        "mpi4py is being built from source and needs MPI's headers and compiler wrappers: "
        f"run `{OPENMPI_APT}` (Debian/Ubuntu), then build again.",
    ),
    BuildHint(
        (r"No module named '?pkg_resources'?",),
        "a source build imports pkg_resources, which setuptools 82 removed: add 'setuptools<74' to "
        "the environment's pip packages (it also becomes a build constraint).",
    ),
)


def build_hints(output: str) -> list[str]:
    """The advice of every :data:`BUILD_HINTS` entry whose patterns all occur in ``output``.

    Example::

        build_hints("... mpi4py ... fatal error: mpi.h: No such file or directory")
        # ["mpi4py is being built from source … apt-get install openmpi-bin libopenmpi-dev …"]
    """
    return [
        h.advice
        for h in BUILD_HINTS
        if all(re.search(p, output, re.IGNORECASE) for p in h.patterns)
    ]


def emitter(log: LogSink | None) -> Callable[[str], None]:
    """A line writer for ``log``: a text stream (flushed per line), a callable, or nothing."""
    if log is None:
        return lambda _line: None
    write = getattr(log, "write", None)
    if write is None:
        return log  # type: ignore[return-value]
    flush = getattr(log, "flush", None)

    def emit(line: str) -> None:
        write(line + "\n")
        if flush is not None:
            flush()

    return emit


def find_uv() -> str:
    """The uv executable shipped with the ``uv`` Python package, else ``uv`` on PATH."""
    try:
        import uv
    except ImportError:
        found = shutil.which("uv")
        if not found:
            raise EnvironmentBuildError(
                "uv is not installed: pip install uv (trainyard builds environments with uv)."
            ) from None
        return found
    return uv.find_uv_bin()


class UvProcesses:
    """Runs a build's processes with one base environment and working folder.

    ``environ`` is the base environment (default: this process's); ``uv_cache_dir`` sets
    ``UV_CACHE_DIR``. Python downloads are always off: a build uses interpreters on this host.
    """

    def __init__(
        self,
        uv_bin: str,
        *,
        cwd: Path,
        environ: Mapping[str, str] | None = None,
        uv_cache_dir: Path | None = None,
    ) -> None:
        self.uv_bin = uv_bin
        self.cwd = cwd
        self._environ = dict(environ) if environ is not None else None
        self._uv_cache_dir = uv_cache_dir

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a step: the base, without ``VIRTUAL_ENV``, plus ``extra``."""
        env = dict(self._environ if self._environ is not None else os.environ)
        env.pop("VIRTUAL_ENV", None)
        env["UV_PYTHON_DOWNLOADS"] = "never"
        env["NO_COLOR"] = "1"
        if self._uv_cache_dir is not None:
            env["UV_CACHE_DIR"] = str(self._uv_cache_dir)
        env.update(extra or {})
        return env

    def run(
        self,
        cmd: list[str],
        emit: Callable[[str], None],
        step: str,
        key: str,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Run ``cmd``, streaming its output to ``emit``; raise with its tail (and any
        :func:`build_hints`) when it fails."""
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        seen: list[str] = []
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                cwd=self.cwd,
                env=self.env(extra_env),
            )
        except OSError as err:
            raise EnvironmentBuildError(
                f"{step} could not start ({err}); is uv installed? (pip install uv)", step=step
            ) from None
        with proc:
            for raw in cast(IO[str], proc.stdout):
                line = raw.rstrip("\n")
                tail.append(line)
                seen.append(line)
                emit(line)
            code = proc.wait()
        if code != 0:
            output = "\n".join(tail)
            hints = build_hints("\n".join(seen))
            advice = "".join(f"\nHint: {h}" for h in hints)
            for h in hints:
                emit(f"Hint: {h}")
            raise EnvironmentBuildError(
                f"{step} failed (exit {code}) while building environment {key}:\n{output}{advice}",
                step=step,
                exit_code=code,
                spec_hash_prefix=key,
                hints=hints,
            )

    def check_import(self, prefix: Path, runtime: TrainyardRuntime, key: str) -> str:
        """Start the built interpreter, import trainyard from the runtime link; return the
        interpreter's ``X.Y.Z``."""
        code = (
            "import os, sys, trainyard; "
            "print('%d.%d.%d' % sys.version_info[:3]); "
            "print(os.path.dirname(os.path.realpath(trainyard.__file__)))"
        )
        try:
            out = subprocess.run(
                [str(prefix / "bin" / "python"), "-I", "-c", code],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=self.cwd,
                env=self.env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise EnvironmentBuildError(
                f"the built environment {key} does not start: {err}"
            ) from None
        lines = out.stdout.split()
        if out.returncode != 0 or len(lines) < 2:
            raise EnvironmentBuildError(
                f"the built environment {key} cannot import trainyard:\n{out.stderr.strip()[-4000:]}"
            )
        if os.path.realpath(lines[1]) != os.path.realpath(runtime.package_dir):
            raise EnvironmentBuildError(
                f"the built environment {key} imports trainyard from {lines[1]}, "
                f"not the submitting side's {runtime.package_dir}."
            )
        return lines[0]

    def freeze(self, python: Path, key: str) -> dict[str, str]:
        """``uv pip freeze`` of ``python`` as ``{name: version}``."""
        out = subprocess.run(
            [self.uv_bin, "pip", "freeze", "--python", str(python)],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env(),
            check=False,
        )
        if out.returncode != 0:
            raise EnvironmentBuildError(
                f"uv pip freeze failed for environment {key}:\n{out.stderr[-4000:]}"
            )
        return parse_freeze(out.stdout)

    def freeze_best_effort(self, python: Path) -> dict[str, str]:
        """Like :meth:`freeze`, but ``{}`` instead of an error (user-managed interpreters)."""
        try:
            out = subprocess.run(
                [self.uv_bin, "pip", "freeze", "--python", str(python)],
                capture_output=True,
                text=True,
                timeout=60,
                env=self.env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return {}
        return parse_freeze(out.stdout) if out.returncode == 0 else {}


def ensure_entry_points(prefix: Path, runtime: TrainyardRuntime) -> None:
    """Entry points for MLflow's plugin discovery in the environment at ``prefix``
    (importlib.metadata scans every ``sys.path`` entry), so a script's ``mlflow`` finds trainyard's
    tracking and model-registry stores. Written beside the runtime link, not in site-packages, so the environment's
    package list stays the user's; added to (or brought up to date in)
    environments cached before when they are reused (idempotent)."""
    runtime_dir = prefix / RUNTIME_DIR
    if not runtime_dir.is_dir():
        return
    info = runtime_dir / f"trainyard_runtime-{runtime.version}.dist-info"
    points = info / "entry_points.txt"
    if points.exists() and points.read_text(encoding="utf-8") == MLFLOW_ENTRY_POINTS:
        return
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: trainyard-runtime\nVersion: {runtime.version}\n",
        encoding="utf-8",
    )
    points.write_text(MLFLOW_ENTRY_POINTS, encoding="utf-8")


BYTECODE_MARK = "bytecode"
_COMPILE_TIMEOUT_S = 900


def ensure_bytecode(prefix: Path, runtime: TrainyardRuntime, emit: Callable[[str], None]) -> None:
    """Byte-compile the environment's packages and the linked trainyard runtime, once.

    Without it every run's interpreter compiles each module it imports from source when bytecode
    is not written back (``PYTHONDONTWRITEBYTECODE``, a read-only cache): ``import chainer``
    took 2.4 s of CPU instead of 0.85 s, and a script's run context 2.1 s instead of 0.7 s. A mark
    in the environment's metadata folder records that it was done (environments cached before this
    are compiled on their next use). Failures to compile single files (a package's Python 2
    examples) are ignored: the import of such a file would fail anyway.
    """
    mark = prefix / META_DIR / BYTECODE_MARK
    if mark.exists():
        return
    python = prefix / "bin" / "python"
    targets = [str(p) for p in sorted((prefix / "lib").glob("python*/site-packages"))]
    package = Path(runtime.package_dir)
    if package.is_dir() and os.access(package, os.W_OK):
        targets.append(str(package))
    if not targets or not python.exists():
        return
    began = time.monotonic()
    try:
        subprocess.run(
            [str(python), "-m", "compileall", "-q", "-j", "0", *targets],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_COMPILE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return  # slower imports, not a broken environment: try again next time
    mark.parent.mkdir(exist_ok=True)
    mark.write_text(f"{time.monotonic() - began:.1f}\n", encoding="utf-8")
    emit(f"Compiled the environment's bytecode in {time.monotonic() - began:.1f} s (once).")


def inject_runtime(prefix: Path, runtime: TrainyardRuntime) -> None:
    """Link the building side's trainyard package into the environment at ``prefix``.

    A relative ``.pth`` line puts ``<prefix>/trainyard-runtime`` on ``sys.path``, so the
    environment stays valid after its folder is renamed into place.
    """
    sites = sorted((prefix / "lib").glob("python*/site-packages"))
    if not sites:
        raise EnvironmentBuildError(f"no site-packages found under {prefix}/lib after uv venv.")
    runtime_dir = prefix / RUNTIME_DIR
    runtime_dir.mkdir()
    os.symlink(runtime.package_dir, runtime_dir / "trainyard", target_is_directory=True)
    ensure_entry_points(prefix, runtime)
    for site in sites:
        rel = os.path.relpath(runtime_dir, site)
        (site / _PTH).write_text(rel + "\n", encoding="utf-8")
