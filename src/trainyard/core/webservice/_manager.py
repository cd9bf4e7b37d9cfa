"""Scoring-process management: the service folders, the environment, start, health, stop.

Each service lives in ``<workspace>/services/<name>/``::

    keys.json                       hashes of the two keys (auth on); re-read by the server
    <generation>/                   one per deploy / update (a restart reuses its generation)
        app/                        copy of the source directory (the entry script inside)
        trainyard-models/<model>/<version>/<files>
        service.log                 environment build, then the server's stdout + stderr
        server.pid                  pid and start time of the server process

The server is ``python -m trainyard._serving`` in a new session (it outlives whoever started it),
bound to 127.0.0.1 by default with ``--port 0`` unless a port is configured; the port it got is read
from its ``listening on`` line. It is healthy once ``GET /`` answers 200. CPU limits are applied with
``sched_setaffinity`` and memory limits with ``RLIMIT_DATA`` (per process) before the server starts.

Example::

    paths = ServicePaths(ws.path, "mnist-svc")
    gen = paths.generation(1)
    handle = start_server(python, gen, ServerArgs(entry_script="score.py", model_dir=gen.models))
    port = wait_listening(handle, timeout_s=60)
    wait_healthy(f"http://127.0.0.1:{port}", handle, timeout_s=600)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trainyard._compat import with_shim
from trainyard._execution.processes import ProcessId, stop_process
from trainyard.core.webservice._options import ServerOptions
from trainyard.exceptions import WebserviceException

#: Folder under the workspace that holds every service.
SERVICES_DIR = "services"
#: Models root inside a generation (v1: ``azureml-models``).
MODELS_DIR = "trainyard-models"
#: Exit codes of ``python -m trainyard._serving`` (see ``trainyard._serving.process``).
EXIT_USAGE, EXIT_INIT_FAILED, EXIT_BIND_FAILED = 2, 3, 4

_READY = re.compile(r"trainyard-serving: init\(\) completed in [0-9.]+s; ready")
_LISTENING = re.compile(r"trainyard-serving: listening on http://(\[[^\]]+\]|[^:\s]+):(\d+)")
_POLL_S = 0.02
_PROBE_TIMEOUT_S = 2.0
_IGNORED_SOURCE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".ipynb_checkpoints")


# ---------------------------------------------------------------------------------- paths
@dataclass(frozen=True)
class GenerationPaths:
    """The files of one generation of a service (see the module docstring)."""

    root: Path

    @property
    def app(self) -> Path:
        """Copy of the source directory."""
        return self.root / "app"

    @property
    def models(self) -> Path:
        """The models root (``trainyard-models``)."""
        return self.root / MODELS_DIR

    @property
    def log(self) -> Path:
        """Build output, then the server's stdout and stderr."""
        return self.root / "service.log"

    @property
    def pid_file(self) -> Path:
        """``{"pid", "start", "host"}`` of the server process."""
        return self.root / "server.pid"

    def model_dir(self, model_ids: Sequence[str]) -> Path:
        """v1's layout: one model → ``<root>/<name>/<version>``; none or several → the root."""
        if len(model_ids) == 1:
            name, _, version = model_ids[0].rpartition(":")
            return self.models / name / version
        return self.models

    def read_pid(self) -> ProcessId | None:
        """The server recorded in :attr:`pid_file`, or ``None``."""
        try:
            return ProcessId.from_dict(json.loads(self.pid_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None


@dataclass(frozen=True)
class ServicePaths:
    """``<workspace>/services/<name>/`` and its generations.

    Example::

        ServicePaths(ws.path, "svc").generation(2).log   # …/services/svc/2/service.log
    """

    workspace_home: Path
    name: str

    @property
    def root(self) -> Path:
        """The service's folder."""
        return Path(self.workspace_home) / SERVICES_DIR / self.name

    @property
    def keys_file(self) -> Path:
        """Hashes of the service keys (shared by every generation, so rotation needs no restart)."""
        return self.root / "keys.json"

    def generation(self, number: int) -> GenerationPaths:
        """The folder of generation ``number``."""
        return GenerationPaths(self.root / str(int(number)))

    def generations(self) -> list[GenerationPaths]:
        """Every generation folder that exists, oldest first."""
        if not self.root.is_dir():
            return []
        numbers = sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit())
        return [self.generation(n) for n in numbers]


# ---------------------------------------------------------------------------------- files
def copy_app(source_directory: Path | None, entry_script: Path, dest: Path) -> str:
    """Copy the source directory (or just the entry script) to ``dest``; return the script's path
    relative to ``dest``.

    Example::

        copy_app(Path("chainer-mnist"), Path("chainer-mnist/chainer_score.py"), gen.app)
    """
    if dest.exists():
        shutil.rmtree(dest)
    if source_directory is not None:
        shutil.copytree(source_directory, dest, ignore=_IGNORED_SOURCE, symlinks=False)
        return entry_script.resolve().relative_to(source_directory.resolve()).as_posix()
    dest.mkdir(parents=True)
    shutil.copy2(entry_script, dest / entry_script.name)
    return entry_script.name


def materialise_models(models: Sequence[Any], gen: GenerationPaths) -> None:
    """Download each :class:`~trainyard.core.model.Model` to ``trainyard-models/<name>/<version>/``.

    Example::

        materialise_models([Model(ws, "mnist")], gen)
    """
    gen.models.mkdir(parents=True, exist_ok=True)
    for model in models:
        model.download(gen.models / model.name / str(model.version), exist_ok=True)


_TAIL_BYTES = 4 * 1024 * 1024


def _read_end(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read()
    except OSError:
        return b""


def read_log_tail(path: Path, num_lines: int) -> str:
    """The last ``num_lines`` lines of ``path`` and, when it holds fewer, of its rotated
    predecessors (``path.1``, ``path.2`` …, newest first); at most 4 MiB read; ``""`` if missing.

    Example::

        read_log_tail(gen.log, 50)
    """
    if num_lines <= 0:
        return ""
    lines: list[str] = []
    budget = _TAIL_BYTES
    index = 0
    while budget > 0 and len(lines) < num_lines:
        part = path if index == 0 else path.with_name(f"{path.name}.{index}")
        if index and not part.exists():
            break
        data = _read_end(part, budget)
        budget -= len(data)
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True) + lines
        index += 1
    return "".join(lines[-num_lines:])


# ---------------------------------------------------------------------------------- limits
def _data_limiter() -> Callable[[int], None] | None:
    """A function setting ``RLIMIT_DATA`` (soft and hard) for this process, where the system has
    one (``resource`` is POSIX-only; not every kernel defines the limit), else ``None``."""
    try:
        import resource
    except ImportError:
        return None
    which = getattr(resource, "RLIMIT_DATA", None)
    if which is None:
        return None

    def limit(data: int) -> None:
        resource.setrlimit(which, (data, data))

    return limit


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to the server process (each worker inherits them).

    ``cpus``: the CPUs it may run on (``sched_setaffinity``); ``data_bytes``: ``RLIMIT_DATA`` (heap
    plus private writable mappings, per process; an allocation past it fails with ``MemoryError``).

    Example::

        Limits.for_request(cpu_cores=1, memory_gb=1, seed="svc").to_dict()
    """

    cpus: tuple[int, ...] | None = None
    data_bytes: int | None = None
    cpu_cores: float | None = None
    memory_gb: float | None = None

    @staticmethod
    def for_request(cpu_cores: float | None, memory_gb: float | None, seed: str) -> Limits:
        """Turn requested cores / memory into limits this machine can enforce.

        ``ceil(cpu_cores)`` CPUs (at least one, at most all usable ones), picked from an offset
        derived from ``seed`` so that services spread over the CPUs.
        """
        cpus: tuple[int, ...] | None = None
        if cpu_cores is not None and hasattr(os, "sched_getaffinity"):
            usable = sorted(os.sched_getaffinity(0))
            want = max(1, min(len(usable), math.ceil(cpu_cores)))
            if want < len(usable):
                start = zlib.crc32(seed.encode("utf-8")) % len(usable)
                cpus = tuple(sorted(usable[(start + i) % len(usable)] for i in range(want)))
        data = None if memory_gb is None or _data_limiter() is None else int(memory_gb * 1024**3)
        return Limits(cpus=cpus, data_bytes=data, cpu_cores=cpu_cores, memory_gb=memory_gb)

    def preexec(self) -> Callable[[], None] | None:
        """A ``preexec_fn`` applying the limits in the child, or ``None`` when there are none."""
        cpus, data = self.cpus, self.data_bytes
        if cpus is None and data is None:
            return None
        # Resolved here, not in the forked child (no imports between fork and exec).
        limit_data = _data_limiter()

        def apply() -> None:
            if cpus is not None:
                os.sched_setaffinity(0, cpus)
            if data is not None and limit_data is not None:
                limit_data(data)

        return apply

    def to_dict(self) -> dict[str, Any]:
        """What was requested and what is enforced, for the service details."""
        return {
            "cpuCores": self.cpu_cores,
            "memoryInGB": self.memory_gb,
            "cpuAffinity": list(self.cpus) if self.cpus is not None else None,
            "rlimitDataBytes": self.data_bytes,
            "enforcement": (
                "CPU: the server and its workers are pinned to ceil(cpu_cores) CPUs "
                "(sched_setaffinity; all CPUs when that is every usable one). Memory: RLIMIT_DATA "
                "per process (each worker may use memory_gb), so allocations past it fail with "
                "MemoryError; it bounds allocated memory, not resident memory."
            ),
        }


# ---------------------------------------------------------------------------------- the server
@dataclass(frozen=True)
class ServerArgs:
    """The command-line of one scoring server (see ``python -m trainyard._serving --help``)."""

    entry_script: str
    model_dir: Path
    service_name: str = "trainyard-service"
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 1
    keys_file: Path | None = None
    max_request_bytes: int = 10 * 1024 * 1024
    env: Mapping[str, str] = field(default_factory=dict)
    options: ServerOptions = field(default_factory=ServerOptions)
    #: The service log the server writes and rotates itself (``None``: its stdout only).
    log_file: Path | None = None

    def argv(self, python: str, app: Path) -> list[str]:
        """The full command."""
        args = [
            python,
            "-m",
            "trainyard._serving",
            "--entry-script",
            self.entry_script,
            "--source-directory",
            str(app),
            "--model-dir",
            str(self.model_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--max-request-bytes",
            str(self.max_request_bytes),
            "--service-name",
            self.service_name,
        ]
        if self.keys_file is not None:
            args += ["--keys-file", str(self.keys_file)]
        if self.log_file is not None:
            args += ["--log-file", str(self.log_file)]
        return args + self.options.argv()


@dataclass
class ServerHandle:
    """A started server: its process, identity, log file and where its output started."""

    proc: subprocess.Popen[bytes]
    ident: ProcessId
    log: Path
    log_offset: int


_DROPPED_VARS = (
    "TRAINYARD_SERVING_CONFIG",
    "TRAINYARD_RUN_ID",
    "AZUREML_RUN_ID",
    "TRAINYARD_MODEL_DIR",
    "AZUREML_MODEL_DIR",
)


def server_environ(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: ``base`` without run/serving variables, plus ``extra``.

    Example::

        server_environ(os.environ, {"OMP_NUM_THREADS": "1"})
    """
    env = {k: v for k, v in base.items() if k not in _DROPPED_VARS}
    env.update({str(k): str(v) for k, v in extra.items()})
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = with_shim(env.get("PYTHONPATH"))  # v1's ``azureml.*`` names
    return env


def start_server(
    python: str,
    gen: GenerationPaths,
    args: ServerArgs,
    limits: Limits | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerHandle:
    """Start the scoring server detached (new session), output appended to ``gen.log``.

    ``environ`` is the base environment (default: this process's). Writes ``gen.pid_file``.

    Example::

        handle = start_server(python, gen, ServerArgs(entry_script="score.py", model_dir=gen.models))
    """
    gen.root.mkdir(parents=True, exist_ok=True)
    env = server_environ(os.environ if environ is None else environ, args.env)
    with open(gen.log, "ab") as out:
        offset = out.tell()
        proc = subprocess.Popen(
            args.argv(python, gen.app),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=gen.app,
            env=env,
            preexec_fn=None if limits is None else limits.preexec(),
        )
    ident = ProcessId.of(proc.pid)
    tmp = gen.pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(ident.to_dict()), encoding="utf-8")
    os.replace(tmp, gen.pid_file)
    return ServerHandle(proc=proc, ident=ident, log=gen.log, log_offset=offset)


def exit_reason(code: int, log_tail: str) -> str:
    """A sentence for a server that exited with ``code`` (see ``trainyard._serving.process``).

    Example::

        exit_reason(3, tail)   # 'The entry script failed to import or its init() raised ...'
    """
    if code == EXIT_INIT_FAILED:
        return (
            "The entry script failed to import or its init() raised (exit code 3); the traceback "
            "is in get_logs()."
        )
    if code == EXIT_BIND_FAILED:
        line = next(
            (ln for ln in log_tail.splitlines() if "cannot listen on" in ln),
            "the address cannot be bound",
        )
        return f"The server could not listen (exit code 4): {line.strip()}"
    if code == EXIT_USAGE:
        return f"The server rejected its configuration (exit code 2): {log_tail.strip()[-500:]}"
    if code < 0:
        return f"The server was killed by signal {-code}."
    return f"The server exited with code {code}; see get_logs()."


class ServerExited(WebserviceException):
    """The server process ended before it was healthy (``details['exit_code']``)."""


def _new_output(handle: ServerHandle) -> str:
    try:
        with open(handle.log, "rb") as fh:
            fh.seek(handle.log_offset)
            return fh.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _raise_exited(handle: ServerHandle, code: int) -> None:
    tail = _new_output(handle)[-8000:]
    raise ServerExited(exit_reason(code, tail), exit_code=code)


def wait_listening(handle: ServerHandle, timeout_s: float) -> int:
    """Wait for the server's ``listening on`` line; return the port. Raises :class:`ServerExited`
    if it exits first, :class:`WebserviceException` after ``timeout_s``.

    Example::

        port = wait_listening(handle, 60)
    """
    deadline = time.monotonic() + timeout_s
    while True:
        match = _LISTENING.search(_new_output(handle))
        if match:
            return int(match.group(2))
        code = handle.proc.poll()
        if code is not None:
            _raise_exited(handle, code)
        if time.monotonic() >= deadline:
            raise WebserviceException(
                f"The server did not start listening within {timeout_s:.0f} s; see get_logs()."
            )
        time.sleep(_POLL_S)


def probe(base_url: str, timeout_s: float = _PROBE_TIMEOUT_S) -> int | None:
    """``GET /`` on the service: the status code, or ``None`` when it cannot be reached.

    Example::

        probe("http://127.0.0.1:5001")   # 200 once init() is done
    """
    import httpx

    try:
        return httpx.get(f"{base_url}/", timeout=timeout_s).status_code
    except httpx.HTTPError:
        return None


def wait_healthy(base_url: str, handle: ServerHandle, timeout_s: float, workers: int = 1) -> None:
    """Wait until ``GET /`` answers 200. Raises :class:`ServerExited` if the server exits first,
    :class:`WebserviceException` after ``timeout_s``.

    The server's log says when each worker finished ``init()``; until ``workers`` of those lines
    appeared, ``GET /`` is only tried once a second, so a long ``init()`` does not fill the log with
    probe lines.

    Example::

        wait_healthy("http://127.0.0.1:5001", handle, 600, workers=2)
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    next_probe = time.monotonic()
    with httpx.Client(timeout=_PROBE_TIMEOUT_S) as client:
        while True:
            code = handle.proc.poll()
            if code is not None:
                _raise_exited(handle, code)
            now = time.monotonic()
            ready = len(_READY.findall(_new_output(handle))) >= workers
            if ready or now >= next_probe:
                next_probe = now + 1.0
                try:
                    if client.get(f"{base_url}/").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            if now >= deadline:
                raise WebserviceException(
                    f"The service did not become healthy within {timeout_s:.0f} s (init() still "
                    "running?); see get_logs()."
                )
            time.sleep(_POLL_S if not ready else 0.05)


def stop_generation(gen: GenerationPaths, grace_s: float) -> None:
    """Stop the server recorded in ``gen.pid_file`` (if any) and remove the pid file.

    Example::

        stop_generation(paths.generation(1), grace_s=10)
    """
    ident = gen.read_pid()
    if ident is not None:
        stop_process(ident, grace_s)
    with contextlib.suppress(OSError):
        gen.pid_file.unlink()


def remove_generation_files(gen: GenerationPaths) -> None:
    """Free a retired generation's disk space (app and models); its log is kept."""
    for folder in (gen.app, gen.models):
        shutil.rmtree(folder, ignore_errors=True)


def log_writer(path: Path) -> tuple[IO[str], Callable[[str], None]]:
    """An append-mode text file and a line sink writing ``trainyard-deploy:``-prefixed lines.

    Example::

        fh, emit = log_writer(gen.log); emit("building"); fh.close()
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - returned to the caller

    def emit(line: str) -> None:
        fh.write(line if line.endswith("\n") else line + "\n")
        fh.flush()

    return fh, emit
