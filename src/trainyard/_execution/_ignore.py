"""What goes into a snapshot: ignore files, the walk of the source folder, and v1's limits.

:func:`scan_source` (re-exported by :mod:`trainyard._execution.snapshot`) returns a
:class:`SnapshotPlan`; storing it is :class:`~trainyard._execution.snapshot.SnapshotStore`'s job.

Ignore rules (also in :func:`scan_source`'s docstring, which users see):

* In every folder of the source tree, at most one ignore file applies: ``.trainyardignore`` if it
  exists, else ``.amlignore`` (v1's name), else ``.gitignore``. The others in that folder are not
  read. So a ``.trainyardignore`` next to an ``.amlignore`` wins, and either replaces ``.gitignore``.
* Patterns use gitignore syntax (via :mod:`pathspec`) relative to the folder that holds the file.
  Rules in a deeper folder override those of its parents; within one file, the last match wins
  (so ``!keep.txt`` after ``*.txt`` re-includes ``keep.txt``).
* As in git, a file inside an ignored folder cannot be re-included: the walk never enters it.
* Some names are always left out, whatever the ignore files say: :data:`ALWAYS_EXCLUDED`.

Example::

    plan = scan_source(Path("chainer-mnist"), max_bytes=300 * 1024 * 1024, max_files=2000)
    rules = IgnoreRules.empty().descend(Path("/src"), "")
    rules.is_ignored("outputs/model.npz", is_dir=False)
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pathspec import GitIgnoreSpec

from trainyard._store.artifacts.paths import safe_relpath
from trainyard.exceptions import PathSafetyError, SnapshotException

__all__ = [
    "ALWAYS_EXCLUDED",
    "IGNORE_FILE_NAMES",
    "IgnoreRules",
    "PlannedFile",
    "SnapshotPlan",
    "never_snapshotted_folder",
    "pick_ignore_file",
    "scan_source",
]

_MB = 1024 * 1024
_OFFENDERS = 10

#: Ignore-file names in order of precedence; only the first that exists in a folder is used.
IGNORE_FILE_NAMES: tuple[str, ...] = (".trainyardignore", ".amlignore", ".gitignore")

#: Names never snapshotted, at any depth and whatever the ignore files say: version-control data
#: (a ``.git`` folder, or the ``.git`` file of a worktree), a project's virtual environment and
#: interpreter/editor caches. Folders that are a virtual environment under another name or a
#: trainyard workspace are left out too (:func:`never_snapshotted_folder`).
ALWAYS_EXCLUDED: frozenset[str] = frozenset({".git", ".venv", "__pycache__", ".ipynb_checkpoints"})

#: A file that marks its folder as a virtual environment (``python -m venv``, uv, virtualenv).
VENV_MARKER = "pyvenv.cfg"
#: Files that, together, mark a folder as a trainyard workspace (``workspace.json`` next to its
#: ``trainyard.db`` or ``snapshots/``): snapshotting one would copy the workspace into itself.
WORKSPACE_MARKERS: tuple[str, tuple[str, ...]] = ("workspace.json", ("trainyard.db", "snapshots"))


def never_snapshotted_folder(folder: Path) -> str | None:
    """Why ``folder`` is left out of every snapshot whatever its name, or ``None``.

    A virtual environment (it holds ``pyvenv.cfg``: ``venv/``, ``env/``, ...) is machine-specific
    and large; a trainyard workspace folder holds the snapshots themselves.

    Example::

        never_snapshotted_folder(Path("project/venv"))   # 'a virtual environment'
    """
    try:
        if (folder / VENV_MARKER).is_file():
            return "a virtual environment"
        meta, companions = WORKSPACE_MARKERS
        if (folder / meta).is_file() and any((folder / c).exists() for c in companions):
            return "a trainyard workspace"
    except PermissionError:  # an unreadable folder is reported by the walk, with its name
        return None
    return None


def pick_ignore_file(folder: Path) -> Path | None:
    """Return the ignore file that applies in ``folder`` (see the module rules), or ``None``.

    Example::

        pick_ignore_file(Path("project"))  # Path('project/.amlignore') when only that one exists
    """
    for name in IGNORE_FILE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _compile(ignore_file: Path, lines: list[str]) -> GitIgnoreSpec:
    """Compile the patterns; a bad one is an error (git would drop it silently, hiding a typo)."""
    try:
        return GitIgnoreSpec.from_lines(lines)
    except (ValueError, re.error):
        pass
    for number, line in enumerate(lines, start=1):
        try:
            GitIgnoreSpec.from_lines([line])
        except (ValueError, re.error) as err:
            raise SnapshotException(
                f"{ignore_file}:{number}: invalid pattern {line!r} ({err}). Fix or remove that line.",
                path=str(ignore_file),
                line=number,
            ) from None
    raise SnapshotException(f"{ignore_file}: invalid patterns.", path=str(ignore_file))


@dataclass(frozen=True)
class _Layer:
    prefix: str  # folder of the ignore file, relative to the source root, "" or ending with "/"
    file_name: str
    spec: GitIgnoreSpec

    @property
    def relpath(self) -> str:
        """The ignore file, relative to the source root."""
        return self.prefix + self.file_name


@dataclass(frozen=True)
class IgnoreRules:
    """The stack of ignore files in effect for one folder of the walk (outermost first).

    Example::

        root_rules = IgnoreRules.empty().descend(src, "")
        sub_rules = root_rules.descend(src / "pkg", "pkg/")
        sub_rules.is_ignored("pkg/build", is_dir=True)
    """

    layers: tuple[_Layer, ...] = ()

    @staticmethod
    def empty() -> IgnoreRules:
        """Rules that ignore nothing."""
        return IgnoreRules()

    def descend(self, folder: Path, prefix: str) -> IgnoreRules:
        """Rules for ``folder`` (at ``prefix`` relative to the root): these plus its own ignore file.

        An :class:`OSError` from probing the folder propagates (the caller reports the folder as
        unreadable). An unreadable or undecodable ignore file raises
        :class:`~trainyard.exceptions.SnapshotException` naming it: silently ignoring it could
        upload secrets the user meant to exclude.
        """
        ignore_file = pick_ignore_file(folder)
        if ignore_file is None:
            return self
        try:
            lines = ignore_file.read_bytes().decode("utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise SnapshotException(
                f"Cannot read the ignore file {str(ignore_file)!r}: {err}. Fix its permissions or "
                "encoding (UTF-8), or delete it.",
                path=str(ignore_file),
            ) from None
        # An empty file still counts: it shadows the lower-precedence names in its folder.
        layer = _Layer(prefix, ignore_file.name, _compile(ignore_file, lines))
        return IgnoreRules((*self.layers, layer))

    def is_ignored(self, relpath: str, *, is_dir: bool) -> bool:
        """Whether ``relpath`` (POSIX, relative to the source root) is excluded.

        The deepest ignore file with a matching pattern decides; no match means included.
        """
        for layer in reversed(self.layers):
            if not relpath.startswith(layer.prefix):
                continue
            sub = relpath[len(layer.prefix) :]
            result = layer.spec.check_file(sub + "/" if is_dir else sub)
            if result.include is not None:
                return bool(result.include)
        return False


# --------------------------------------------------------------------------------------------------
# Scanning


@dataclass(frozen=True)
class PlannedFile:
    """One file to snapshot: where it will live in the snapshot and where to read it from.

    ``source`` is the real path (a symlink inside the source folder is already resolved), ``mode`` is
    normalised to ``0o755`` (executable by its owner) or ``0o644``.

    Example::

        PlannedFile("train.py", Path("/src/train.py"), size=1234, mode=0o644)
    """

    relpath: str
    source: Path
    size: int
    mode: int


@dataclass(frozen=True)
class SnapshotPlan:
    """What :func:`scan_source` decided to snapshot; hand it to :meth:`SnapshotStore.take`.

    ``files`` are sorted by ``relpath``. ``warnings`` say what was skipped for a reason the user may
    not expect (a symlink pointing outside, a special file, a name trainyard cannot store);
    ``ignore_files`` are the ignore files that were applied, relative to ``source_dir``.

    Example::

        plan = scan_source(src, max_bytes=300 * 1024 * 1024, max_files=2000)
        for warning in plan.warnings:
            print("snapshot:", warning)
    """

    source_dir: Path
    files: tuple[PlannedFile, ...]
    warnings: tuple[str, ...] = ()
    ignore_files: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """Sum of the planned files' sizes."""
        return sum(f.size for f in self.files)

    @property
    def file_count(self) -> int:
        """Number of planned files."""
        return len(self.files)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _limit_text(max_bytes: int) -> str:
    """v1's ``300.0 MB`` form; tiny limits (tests, odd settings) also show the exact bytes."""
    text = f"{max_bytes / _MB:.1f} MB"
    if round(max_bytes / _MB, 1) * _MB != max_bytes:
        text += f" ({max_bytes:,} bytes)"
    return text


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Walker:
    """Collects files under ``real_root``; never reads anything outside it."""

    def __init__(self, real_root: str) -> None:
        self.real_root = real_root
        self.files: list[PlannedFile] = []
        self.warnings: list[str] = []
        self.unreadable: list[str] = []
        self.ignore_files: list[str] = []

    def run(self) -> None:
        # An explicit stack: deep trees must not hit Python's recursion limit.
        stack: list[tuple[str, str, IgnoreRules, frozenset[str]]] = [
            (self.real_root, "", IgnoreRules.empty(), frozenset({self.real_root}))
        ]
        while stack:
            folder, prefix, parent_rules, chain = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
                # Listing can work while stat'ing the children does not (r without x).
                rules = parent_rules.descend(Path(folder), prefix)
            except OSError as err:
                self.unreadable.append(f"{prefix or './'} ({err.strerror or err})")
                continue
            if len(rules.layers) > len(parent_rules.layers):
                self.ignore_files.append(rules.layers[-1].relpath)
            for entry in entries:
                self._visit(entry, prefix, rules, chain, stack)

    def _visit(
        self,
        entry: os.DirEntry[str],
        prefix: str,
        rules: IgnoreRules,
        chain: frozenset[str],
        stack: list[tuple[str, str, IgnoreRules, frozenset[str]]],
    ) -> None:
        rel = prefix + entry.name
        if entry.name in ALWAYS_EXCLUDED:
            return
        try:
            is_link = entry.is_symlink()
            if is_link:
                read_path = os.path.realpath(entry.path)
                if not _inside(read_path, self.real_root):
                    if not rules.is_ignored(rel, is_dir=os.path.isdir(entry.path)):
                        self.warnings.append(
                            f"{rel}: skipped, it is a symlink to {read_path}, outside the source "
                            "directory (copy the file in, or use a datastore)"
                        )
                    return
                try:
                    st = os.stat(read_path)
                except OSError as err:
                    if not rules.is_ignored(rel, is_dir=False):
                        self.warnings.append(f"{rel}: skipped, broken symlink ({err.strerror})")
                    return
            else:
                read_path = entry.path
                st = entry.stat(follow_symlinks=False)
        except OSError as err:
            self.unreadable.append(f"{rel} ({err.strerror or err})")
            return
        if stat.S_ISDIR(st.st_mode):
            if rules.is_ignored(rel, is_dir=True) or never_snapshotted_folder(Path(read_path)):
                return
            if read_path in chain:
                self.warnings.append(f"{rel}/: skipped, symlink loop back to {read_path}")
                return
            stack.append((read_path, rel + "/", rules, chain | {read_path}))
        elif stat.S_ISREG(st.st_mode):
            if not rules.is_ignored(rel, is_dir=False):
                self._add_file(rel, read_path, st)
        elif not rules.is_ignored(rel, is_dir=False):
            self.warnings.append(f"{rel}: skipped, not a regular file (socket, pipe or device)")

    def _add_file(self, rel: str, read_path: str, st: os.stat_result) -> None:
        try:
            if safe_relpath(rel) != rel:
                raise PathSafetyError(f"{rel!r} does not normalise to itself")
        except PathSafetyError as err:
            self.warnings.append(
                f"{rel}: skipped, trainyard cannot store this name ({err.details.get('reason', err)}); "
                "rename it if the run needs it"
            )
            return
        if not os.access(read_path, os.R_OK):
            self.unreadable.append(f"{rel} (Permission denied)")
            return
        mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
        self.files.append(PlannedFile(rel, Path(read_path), st.st_size, mode))


def _size_error(
    source: Path, files: list[PlannedFile], total: int, max_bytes: int
) -> SnapshotException:
    biggest = sorted(files, key=lambda f: (-f.size, f.relpath))[:_OFFENDERS]
    width = max((len(f.relpath) for f in biggest), default=0)
    lines = "\n".join(f"  {f.relpath:<{width}}  {_human(f.size):>10}" for f in biggest)
    message = (
        f"While attempting to take snapshot of {source}\n"
        f"Your total snapshot size exceeds the limit of {_limit_text(max_bytes)} "
        f"(it is {_human(total)} in {len(files):,} files).\n"
        f"The {len(biggest)} biggest files:\n{lines}\n"
        "To fix this, add what the run does not need to a .trainyardignore file in the source "
        "directory (gitignore syntax; .amlignore also works), keep large data in a datastore or "
        "Dataset, or raise the limit with TRAINYARD_SNAPSHOT_MAX_BYTES (bytes)."
    )
    return SnapshotException(
        message,
        source_dir=str(source),
        total_bytes=total,
        max_bytes=max_bytes,
        biggest=[[f.relpath, f.size] for f in biggest],
    )


def _count_error(source: Path, files: list[PlannedFile], max_files: int) -> SnapshotException:
    per_folder = Counter(f.relpath.rpartition("/")[0] + "/" for f in files)
    top = sorted(per_folder.items(), key=lambda kv: (-kv[1], kv[0]))[:_OFFENDERS]
    shown = [("./" if folder == "/" else folder, n) for folder, n in top]
    width = max((len(folder) for folder, _ in shown), default=0)
    lines = "\n".join(f"  {folder:<{width}}  {n:>7,} files" for folder, n in shown)
    message = (
        f"While attempting to take snapshot of {source}\n"
        f"Your snapshot has {len(files):,} files, more than the limit of {max_files:,} files.\n"
        f"Folders with the most files:\n{lines}\n"
        "To fix this, add what the run does not need to a .trainyardignore file in the source "
        "directory (gitignore syntax; .amlignore also works), or lift the limit with "
        "TRAINYARD_SNAPSHOT_NO_FILE_LIMIT=1 (v1's AML_SNAPSHOT_NO_FILE_LIMIT=1 also works), or "
        "raise it with TRAINYARD_SNAPSHOT_MAX_FILES."
    )
    return SnapshotException(
        message,
        source_dir=str(source),
        file_count=len(files),
        max_files=max_files,
        biggest_folders=[[folder, n] for folder, n in shown],
    )


def scan_source(source_dir: Path, *, max_bytes: int, max_files: int | None) -> SnapshotPlan:
    """Decide what to snapshot from ``source_dir`` and check v1's limits; copies nothing.

    Ignore files (gitignore syntax, matched relative to the folder holding them): in each folder the
    first that exists of ``.trainyardignore``, ``.amlignore`` (v1), ``.gitignore`` applies and the
    others there are not read, so ``.trainyardignore`` wins over ``.amlignore`` and either
    replaces ``.gitignore``. Ignore files in subfolders are honoured as git does (deeper rules
    override; nothing inside an ignored folder can be re-included). ``.git``, ``.venv``,
    ``__pycache__`` and ``.ipynb_checkpoints`` are always left out, as is any folder that is a
    virtual environment (it holds ``pyvenv.cfg``) or a trainyard workspace.

    Symlinks: one that resolves inside ``source_dir`` is snapshotted as the content it points to
    (folders included; loops are cut); one that points outside is never followed and is skipped
    with an entry in :attr:`SnapshotPlan.warnings`. Sockets, pipes and devices are skipped the same
    way, as are names that trainyard's path policy refuses to store (e.g. containing ``#``).

    Raises :class:`~trainyard.exceptions.SnapshotException` when ``source_dir`` is missing or not
    a folder, when files or folders cannot be read (naming them), when the total size exceeds
    ``max_bytes`` (v1's ``Your total snapshot size exceeds the limit of 300.0 MB`` plus the 10
    biggest files and what to do), or when there are more than ``max_files`` files (``None`` means
    no file limit, e.g. when ``TRAINYARD_SNAPSHOT_NO_FILE_LIMIT`` is set).

    Example::

        plan = scan_source(Path("chainer-mnist"), max_bytes=300 * 1024 * 1024, max_files=2000)
        print(plan.file_count, plan.total_bytes, plan.warnings)
    """
    source = Path(source_dir)
    if not source.exists():
        raise SnapshotException(
            f"The source directory {str(source)!r} does not exist. Pass the folder that holds your "
            "training script as source_directory.",
            source_dir=str(source),
        )
    if not source.is_dir():
        raise SnapshotException(
            f"The source directory {str(source)!r} is not a folder. Pass the folder that holds "
            "your training script as source_directory, and the script's name as script.",
            source_dir=str(source),
        )
    walker = _Walker(os.path.realpath(source))
    walker.run()
    if walker.unreadable:
        listed = "\n".join(f"  {p}" for p in sorted(walker.unreadable)[:50])
        more = len(walker.unreadable) - 50
        raise SnapshotException(
            f"Cannot take a snapshot of {source}: {len(walker.unreadable)} file(s) or folder(s) "
            f"cannot be read:\n{listed}" + (f"\n  … and {more} more" if more > 0 else "") + "\n"
            "Fix their permissions, or add them to .trainyardignore in the source directory.",
            source_dir=str(source),
            unreadable=sorted(walker.unreadable),
        )
    files = sorted(walker.files, key=lambda f: f.relpath)
    total = sum(f.size for f in files)
    if total > max_bytes:
        raise _size_error(source, files, total, max_bytes)
    if max_files is not None and len(files) > max_files:
        raise _count_error(source, files, max_files)
    return SnapshotPlan(
        source_dir=Path(walker.real_root),
        files=tuple(files),
        warnings=tuple(walker.warnings),
        ignore_files=tuple(sorted(walker.ignore_files)),
    )
