"""Build uv virtual environments once per content hash and reuse them.

Layout of the cache directory (``settings.env_cache_dir``, ``~/.trainyard/envs`` by default)::

    <cache>/<hash[:16]>/                 a complete environment (relocatable uv venv)
        bin/python                       the interpreter runs use
        trainyard-env.json               marker: spec, resolved versions, build time (written last)
        trainyard-runtime/trainyard  ->  the building side's trainyard package (symlink)
        lib/python3.X/site-packages/_trainyard_runtime.pth   adds ../../../trainyard-runtime
        .trainyard/                      requirements.txt, build-constraints.txt, build.log
    <cache>/<hash[:16]>.lock             flock: one build per hash across processes
    <cache>/<hash[:16]>.tmp-<random>/    a build in progress (renamed into place when complete)

A cache hit reads one small JSON file and checks two paths, so a warm run starts in milliseconds.
The environment is complete exactly when ``<hash[:16]>/`` exists with its marker: builds happen in
a temporary directory renamed atomically, and a failed build removes its temporary directory.

**Trainyard runtime injection.** Every environment can ``import trainyard`` without listing it:
trainyard's runtime dependencies (:data:`~.spec.RUNTIME_DISTRIBUTIONS`) are installed at the exact
versions the building side has, and a ``.pth`` file puts ``<prefix>/trainyard-runtime`` on
``sys.path``; that directory holds a symlink to the building side's ``trainyard`` package. A
symlink, not a copy: the run sees exactly the code that submitted it (including an editable
checkout under development, whose changes would otherwise hide behind an unchanged
``__version__``), and it costs nothing per environment. The hash includes trainyard's version and
package location, so another trainyard install gets its own environments. The ``.pth`` line is
relative, so the environment stays valid after the atomic rename.

Example::

    from pathlib import Path
    import os, sys
    from trainyard._execution.environments import EnvSpec, EnvironmentBuilder, read_pip_config
    builder = EnvironmentBuilder(Path("/tmp/envs"), read_pip_config(os.environ))
    built = builder.build(EnvSpec.from_requirements(["six==1.16.0"]), log=sys.stdout)
    print(built.python, built.cached, built.resolved["six"])
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from trainyard.exceptions import EnvironmentBuildError, EnvironmentNotFound, ValidationError

from .pipconfig import PipConfig, read_pip_config
from .spec import EnvSpec, TrainyardRuntime, python_version_matches, spec_hash

if TYPE_CHECKING:
    from trainyard.settings import Settings

#: Name of the file that marks a complete environment.
MARKER = "trainyard-env.json"
#: Where the runtime symlink lives inside an environment.
RUNTIME_DIR = "trainyard-runtime"
_PTH = "_trainyard_runtime.pth"
_META = ".trainyard"
_TAIL_LINES = 80

LogSink = IO[str] | Callable[[str], None]


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready environment: run ``python``; ``resolved`` maps distribution → installed version.

    ``cached`` is ``True`` when nothing was built by this call; ``seconds`` is what the call took.
    """

    python: Path
    prefix: Path
    spec_hash: str
    resolved: dict[str, str] = field(hash=False)
    cached: bool
    seconds: float


@dataclass(frozen=True)
class CachedEnvironment:
    """One entry of the cache, as ``trainyard env list|show`` prints it."""

    spec_hash: str
    prefix: Path
    python: Path
    python_version: str
    spec: EnvSpec
    resolved: dict[str, str] = field(hash=False)
    created_at: datetime
    last_used_at: datetime
    build_seconds: float
    notices: tuple[str, ...] = ()


def _emitter(log: LogSink | None) -> Callable[[str], None]:
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


class _FileLock:
    """An exclusive ``fcntl.flock`` on a file that is never deleted (deleting lock files races)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


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
            try:
                import uv
            except ImportError:
                found = shutil.which("uv")
                if not found:
                    raise EnvironmentBuildError(
                        "uv is not installed: pip install uv (trainyard builds environments with uv)."
                    ) from None
                self._uv_bin = found
            else:
                self._uv_bin = uv.find_uv_bin()
        return self._uv_bin

    def spec_hash(self, spec: EnvSpec) -> str:
        """The cache key of ``spec`` with this builder's runtime."""
        return spec_hash(spec, self.runtime)

    def lookup(self, spec: EnvSpec) -> BuiltEnvironment | None:
        """The cached environment for ``spec`` without building, or ``None``."""
        start = time.monotonic()
        if spec.user_managed:
            return None
        digest = self.spec_hash(spec)
        return self._hit(self.cache_dir / digest[:16], digest, start)

    def build(self, spec: EnvSpec, log: LogSink | None = None) -> BuiltEnvironment:
        """Return the environment for ``spec``, building it unless the cache has it.

        uv's output goes to ``log`` line by line as it is written (a text stream or a callable).
        Raises :class:`~trainyard.exceptions.EnvironmentBuildError` carrying uv's message when the
        requirements cannot be resolved or installed; nothing is left behind then.

        Example::

            built = builder.build(EnvSpec.from_requirements(["six==1.16.0"]), log=print)
        """
        start = time.monotonic()
        emit = _emitter(log)
        if spec.user_managed:
            return self._user_managed(spec, emit, start)
        digest = self.spec_hash(spec)
        key = digest[:16]
        final = self.cache_dir / key
        for notice in spec.notices:
            emit(f"Notice: {notice}")
        hit = self._hit(final, digest, start)
        if hit is not None:
            emit(f"Environment {key} reused from the cache: {final}")
            return hit
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        lock = _FileLock(self.cache_dir / f"{key}.lock")
        if not lock.acquire(blocking=False):
            emit(f"Environment {key} is being built by another process; waiting for it.")
            lock.acquire()
        try:
            hit = self._hit(final, digest, start)
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
            info = self._read_entry(entry)
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
        key = entry.spec_hash[:16]
        lock = _FileLock(self.cache_dir / f"{key}.lock")
        lock.acquire()
        try:
            self._discard(entry.prefix)
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
        if self.cache_dir.is_dir():
            for leftover in self.cache_dir.iterdir():
                if ".trash-" in leftover.name:
                    shutil.rmtree(leftover, ignore_errors=True)
                elif ".tmp-" in leftover.name:
                    lock = _FileLock(self.cache_dir / (leftover.name.split(".tmp-")[0] + ".lock"))
                    if lock.acquire(blocking=False):
                        try:
                            shutil.rmtree(leftover, ignore_errors=True)
                        finally:
                            lock.release()
        return removed

    # ------------------------------------------------------------------ cache entries
    def _hit(self, final: Path, digest: str, start: float) -> BuiltEnvironment | None:
        marker = final / MARKER
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        python = final / "bin" / "python"
        if data.get("spec_hash") != digest or not python.exists():
            return None
        if not (final / RUNTIME_DIR / "trainyard").exists():
            return None
        with contextlib.suppress(OSError):
            os.utime(marker)  # last use, for prune
        return BuiltEnvironment(
            python=python,
            prefix=final,
            spec_hash=digest,
            resolved=dict(data.get("resolved") or {}),
            cached=True,
            seconds=time.monotonic() - start,
        )

    def _read_entry(self, entry: Path) -> CachedEnvironment | None:
        marker = entry / MARKER
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
            used = datetime.fromtimestamp(marker.stat().st_mtime, UTC)
            return CachedEnvironment(
                spec_hash=str(data["spec_hash"]),
                prefix=entry,
                python=entry / "bin" / "python",
                python_version=str(data.get("python_version", "")),
                spec=EnvSpec.from_dict(data["spec"]),
                resolved=dict(data.get("resolved") or {}),
                created_at=datetime.fromisoformat(data["created_at"]),
                last_used_at=used,
                build_seconds=float(data.get("build_seconds", 0.0)),
                notices=tuple(data.get("notices") or ()),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _discard(self, path: Path) -> None:
        trash = path.with_name(f"{path.name}.trash-{secrets.token_hex(4)}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

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
        try:
            record(f"Building environment {key} (Python {spec.python_version}) in {final}")
            python_request = (
                self._python
                if python_version_matches(spec.python_version, platform.python_version())
                else spec.python_version
            )
            try:
                self._run(
                    [self.uv_bin, "venv", "--relocatable", "--python", python_request, str(tmp)],
                    record,
                    "uv venv",
                    key,
                )
            except EnvironmentBuildError as err:
                if python_request == self._python:
                    raise
                raise EnvironmentBuildError(
                    f"Python {spec.python_version} was requested by the environment and is not "
                    f"available on this host (no downloads are attempted); install it, or pin the "
                    f"running Python {platform.python_version()} instead.\n{err.message}",
                    **err.details,
                ) from None
            meta = tmp / _META
            meta.mkdir()
            runtime_reqs = runtime.requirements_for(spec)
            overridden = set(runtime.requirements) - set(runtime_reqs)
            for pin in sorted(overridden):
                record(
                    f"Notice: the spec names {pin.split('==')[0]}; it is used instead of trainyard's {pin}."
                )
            requirements = [*spec.requirements, *runtime_reqs]
            (meta / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
            cfg = self.pip_config.with_spec(spec)
            cmd = [
                self.uv_bin,
                "pip",
                "install",
                "--python",
                str(tmp / "bin" / "python"),
                *cfg.uv_args(),
            ]
            if spec.build_constraints:
                constraints = meta / "build-constraints.txt"
                constraints.write_text("\n".join(spec.build_constraints) + "\n", encoding="utf-8")
                cmd += ["--build-constraint", str(constraints)]
            cmd += ["-r", str(meta / "requirements.txt")]
            self._run(cmd, record, "uv pip install", key, extra_env=cfg.uv_env())
            self._inject_runtime(tmp, runtime)
            python_version = self._check_import(tmp, runtime, key)
            resolved = self._freeze(tmp / "bin" / "python", key)
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
                self._discard(final)  # incomplete or broken leftover under the lock
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

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(self._environ if self._environ is not None else os.environ)
        env.pop("VIRTUAL_ENV", None)
        env["UV_PYTHON_DOWNLOADS"] = "never"
        env["NO_COLOR"] = "1"
        if self._uv_cache_dir is not None:
            env["UV_CACHE_DIR"] = str(self._uv_cache_dir)
        env.update(extra or {})
        return env

    def _run(
        self,
        cmd: list[str],
        emit: Callable[[str], None],
        step: str,
        key: str,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                cwd=self.cache_dir,
                env=self._env(extra_env),
            )
        except OSError as err:
            raise EnvironmentBuildError(
                f"{step} could not start ({err}); is uv installed? (pip install uv)", step=step
            ) from None
        with proc:
            for raw in cast(IO[str], proc.stdout):
                line = raw.rstrip("\n")
                tail.append(line)
                emit(line)
            code = proc.wait()
        if code != 0:
            output = "\n".join(tail)
            raise EnvironmentBuildError(
                f"{step} failed (exit {code}) while building environment {key}:\n{output}",
                step=step,
                exit_code=code,
                spec_hash_prefix=key,
            )

    def _inject_runtime(self, prefix: Path, runtime: TrainyardRuntime) -> None:
        sites = sorted((prefix / "lib").glob("python*/site-packages"))
        if not sites:
            raise EnvironmentBuildError(f"no site-packages found under {prefix}/lib after uv venv.")
        runtime_dir = prefix / RUNTIME_DIR
        runtime_dir.mkdir()
        os.symlink(runtime.package_dir, runtime_dir / "trainyard", target_is_directory=True)
        for site in sites:
            rel = os.path.relpath(runtime_dir, site)
            (site / _PTH).write_text(rel + "\n", encoding="utf-8")

    def _check_import(self, prefix: Path, runtime: TrainyardRuntime, key: str) -> str:
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
                cwd=self.cache_dir,
                env=self._env(),
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

    def _freeze(self, python: Path, key: str) -> dict[str, str]:
        out = subprocess.run(
            [self.uv_bin, "pip", "freeze", "--python", str(python)],
            capture_output=True,
            text=True,
            cwd=self.cache_dir,
            env=self._env(),
            check=False,
        )
        if out.returncode != 0:
            raise EnvironmentBuildError(
                f"uv pip freeze failed for environment {key}:\n{out.stderr[-4000:]}"
            )
        return parse_freeze(out.stdout)

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
            resolved = self._freeze_best_effort(python)
            prefix = python.parent.parent
        return BuiltEnvironment(
            python=python,
            prefix=prefix,
            spec_hash=spec_hash(spec),
            resolved=resolved,
            cached=True,
            seconds=time.monotonic() - start,
        )

    def _freeze_best_effort(self, python: Path) -> dict[str, str]:
        try:
            out = subprocess.run(
                [self.uv_bin, "pip", "freeze", "--python", str(python)],
                capture_output=True,
                text=True,
                timeout=60,
                env=self._env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired, EnvironmentBuildError):
            return {}
        return parse_freeze(out.stdout) if out.returncode == 0 else {}


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


def parse_freeze(text: str) -> dict[str, str]:
    """``name==version`` lines → ``{name: version}`` (names lower-cased; URL installs keep the URL).

    Example::

        parse_freeze("six==1.16.0\\nfoo @ file:///x.whl\\n")   # {"six": "1.16.0", "foo": "file:///x.whl"}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower()] = version.strip()
        elif " @ " in line:
            name, url = line.split(" @ ", 1)
            out[name.strip().lower()] = url.strip()
    return out


def iter_sizes(prefix: Path) -> Iterator[int]:
    """Sizes of the regular files under ``prefix`` (symlinks not followed)."""
    for root, _dirs, files in os.walk(prefix):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                yield st.st_size


def size_bytes(prefix: Path) -> int:
    """Disk size of one environment (hard links into uv's cache counted in full)."""
    return sum(iter_sizes(prefix))
