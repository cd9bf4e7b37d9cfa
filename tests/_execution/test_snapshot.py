"""Snapshots: ignore files, limits, symlinks, the content-addressed store, restore and gc."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard._execution._ignore import _limit_text
from trainyard._execution.snapshot import SnapshotStore, scan_source
from trainyard.exceptions import ArtifactNotFound, PathSafetyError, SnapshotException
from trainyard.settings import load_settings

MB = 1024 * 1024
BIG = 10 * MB


def write(root: Path, rel: str, data: bytes | str = b"x", mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        path.chmod(mode)
    return path


def names(source: Path, **limits: int | None) -> list[str]:
    max_bytes = limits.get("max_bytes", BIG)
    assert max_bytes is not None
    plan = scan_source(source, max_bytes=max_bytes, max_files=limits.get("max_files", 2000))
    return [f.relpath for f in plan.files]


def objects(store_root: Path) -> set[str]:
    base = store_root / "objects"
    return {p.name for p in base.glob("*/*")} if base.is_dir() else set()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "store")


# ---- ignore files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "expected_ignored"),
    [
        ({".trainyardignore": "a.txt", ".amlignore": "b.txt", ".gitignore": "c.txt"}, "a.txt"),
        ({".amlignore": "b.txt", ".gitignore": "c.txt"}, "b.txt"),
        ({".gitignore": "c.txt"}, "c.txt"),
        ({".trainyardignore": "a.txt", ".gitignore": "c.txt"}, "a.txt"),
    ],
)
def test_only_the_first_existing_ignore_file_applies(
    src: Path, present: dict[str, str], expected_ignored: str
) -> None:
    for name, content in present.items():
        write(src, name, content + "\n")
    for name in ("a.txt", "b.txt", "c.txt"):
        write(src, name)
    kept = names(src)
    assert expected_ignored not in kept
    assert {"a.txt", "b.txt", "c.txt"} - {expected_ignored} <= set(kept)
    # The ignore files themselves are part of the snapshot, as in v1.
    assert set(present) <= set(kept)


def test_empty_trainyardignore_still_shadows_gitignore(src: Path) -> None:
    write(src, ".trainyardignore", "")
    write(src, ".gitignore", "*.txt\n")
    write(src, "a.txt")
    assert "a.txt" in names(src)


def test_gitignore_syntax(src: Path) -> None:
    write(
        src,
        ".trainyardignore",
        "\n".join(
            [
                "# comment",
                "*.log",
                "!keep.log",
                "build/",  # directory pattern: the folder, not a file of that name
                "/only_root.txt",  # anchored
                "docs/**/draft.md",  # ** spans folders
                "data/",
                "!data/wanted.csv",  # cannot re-include inside an excluded folder (git rule)
            ]
        ),
    )
    for rel in [
        "train.py",
        "x.log",
        "sub/y.log",
        "keep.log",
        "sub/keep.log",
        "build/out.bin",
        "pkg/build/out.bin",
        "only_root.txt",
        "sub/only_root.txt",
        "docs/draft.md",
        "docs/a/b/draft.md",
        "docs/final.md",
        "data/wanted.csv",
    ]:
        write(src, rel)
    write(src, "build_file/build", "a file named build is not a folder")
    assert names(src) == [
        ".trainyardignore",
        "build_file/build",
        "docs/final.md",
        "keep.log",
        "sub/keep.log",
        "sub/only_root.txt",
        "train.py",
    ]


def test_ignore_files_in_subfolders_are_relative_and_override_parents(src: Path) -> None:
    write(src, ".gitignore", "*.tmp\nsecret.txt\n")
    write(src, "pkg/.gitignore", "/local.txt\n!important.tmp\n")
    write(src, "pkg/deeper/.amlignore", "*.csv\n")
    for rel in [
        "a.tmp",
        "local.txt",
        "pkg/local.txt",
        "pkg/sub/local.txt",
        "pkg/important.tmp",
        "pkg/other.tmp",
        "pkg/secret.txt",
        "pkg/deeper/t.csv",
        "t.csv",
    ]:
        write(src, rel)
    plan = scan_source(src, max_bytes=BIG, max_files=None)
    assert [f.relpath for f in plan.files] == [
        ".gitignore",
        "local.txt",
        "pkg/.gitignore",
        "pkg/deeper/.amlignore",
        "pkg/important.tmp",
        "pkg/sub/local.txt",
        "t.csv",
    ]
    assert plan.ignore_files == (".gitignore", "pkg/.gitignore", "pkg/deeper/.amlignore")


def test_always_excluded_folders(src: Path) -> None:
    write(src, ".git/config")
    write(src, "__pycache__/m.cpython-311.pyc")
    write(src, "pkg/__pycache__/m.pyc")
    write(src, ".ipynb_checkpoints/nb-checkpoint.ipynb")
    write(src, ".trainyardignore", "!.git\n!__pycache__/\n")
    write(src, ".trainyard/config.json", "{}")
    write(src, "pkg/m.py")
    assert names(src) == [".trainyard/config.json", ".trainyardignore", "pkg/m.py"]


@pytest.mark.parametrize("ignore_file", [None, ".gitignore", ".trainyardignore", ".amlignore"])
def test_venvs_caches_git_and_workspaces_never_snapshotted(
    src: Path, ignore_file: str | None
) -> None:
    """A project's .venv (or a venv under any name), __pycache__, .git and a workspace folder
    inside it stay out, with or without an ignore file, even one that re-includes them."""
    write(src, ".venv/lib/python3.11/site-packages/big.py")
    write(src, ".venv/pyvenv.cfg", "home = /usr/bin\n")
    write(src, "env2/pyvenv.cfg", "home = /usr/bin\n")
    write(src, "env2/bin/python", "#!")
    write(src, "__pycache__/train.cpython-311.pyc")
    write(src, ".git/HEAD", "ref: refs/heads/main\n")
    write(src, "my-ws/workspace.json", "{}")
    write(src, "my-ws/trainyard.db")
    write(src, "data/workspace.json", "{}")  # a user's file of that name alone is kept
    write(src, "train.py")
    if ignore_file is not None:
        write(src, ignore_file, "!.venv/\n!env2/\n!__pycache__/\n!.git/\n!my-ws/\n*.log\n")
    expected = ["data/workspace.json", "train.py"]
    if ignore_file is not None:
        expected = sorted([*expected, ignore_file])
    assert names(src) == expected


def test_invalid_ignore_pattern_names_file_and_line(src: Path) -> None:
    write(src, ".amlignore", "*.log\n!\n")
    with pytest.raises(SnapshotException) as err:
        names(src)
    assert ".amlignore:2" in str(err.value)


# ---- limits ------------------------------------------------------------------------------------


def test_size_limit_message_and_offenders(src: Path) -> None:
    for i in range(12):
        write(src, f"blob{i:02d}.bin", b"\0" * (100_000 * (i + 1)))
    with pytest.raises(SnapshotException) as caught:
        scan_source(src, max_bytes=MB, max_files=2000)
    err = caught.value
    text = str(err)
    assert "Your total snapshot size exceeds the limit of 1.0 MB" in text
    assert str(src) in text
    # The 10 biggest, biggest first, with human-readable sizes; the two smallest are not listed.
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("  blob")]
    assert listed == [f"blob{i:02d}.bin" for i in range(11, 1, -1)]
    assert "1.1 MB" in text  # blob11: 1,200,000 bytes
    assert "blob00.bin" not in text and "blob01.bin" not in text
    assert ".trainyardignore" in text and "TRAINYARD_SNAPSHOT_MAX_BYTES" in text
    assert err.details["total_bytes"] == sum(100_000 * (i + 1) for i in range(12))
    assert err.details["biggest"][0] == ["blob11.bin", 1_200_000]
    assert len(err.details["biggest"]) == 10
    json.dumps(err.to_dict())  # travels on the wire


def test_size_limit_is_inclusive_and_counts_only_kept_files(src: Path) -> None:
    write(src, "a.bin", b"\0" * 600)
    write(src, "b.bin", b"\0" * 400)
    assert names(src, max_bytes=1000) == ["a.bin", "b.bin"]
    write(src, "big.bin", b"\0" * 5000)
    write(src, ".trainyardignore", "big.bin\n")
    with pytest.raises(SnapshotException):
        names(src, max_bytes=1000)  # the ignore file's own bytes tip it over
    assert names(src, max_bytes=1000 + len("big.bin\n")) == [".trainyardignore", "a.bin", "b.bin"]


def test_limit_text_matches_v1_for_the_default() -> None:
    assert _limit_text(300 * MB) == "300.0 MB"
    assert _limit_text(load_settings({}).snapshot_max_bytes) == "300.0 MB"
    assert _limit_text(10) == "0.0 MB (10 bytes)"


def test_file_count_limit_and_lift(src: Path) -> None:
    for i in range(6):
        write(src, f"many/f{i}.txt")
    write(src, "other/a.txt")
    write(src, "top.py")
    with pytest.raises(SnapshotException) as caught:
        names(src, max_files=5)
    text = str(caught.value)
    assert "8 files" in text and "limit of 5 files" in text
    assert text.index("many/") < text.index("other/")
    assert "TRAINYARD_SNAPSHOT_NO_FILE_LIMIT=1" in text and "AML_SNAPSHOT_NO_FILE_LIMIT" in text
    assert caught.value.details["biggest_folders"][0] == ["many/", 6]
    assert len(names(src, max_files=8)) == 8

    # v1's variable lifts the cap through settings: the caller passes max_files=None.
    settings = load_settings(
        {"AML_SNAPSHOT_NO_FILE_LIMIT": "1", "TRAINYARD_SNAPSHOT_MAX_FILES": "5"}
    )
    max_files = None if settings.snapshot_no_file_limit else settings.snapshot_max_files
    assert max_files is None
    assert len(names(src, max_files=max_files)) == 8


def test_missing_or_non_folder_source(tmp_path: Path) -> None:
    with pytest.raises(SnapshotException, match="does not exist") as err:
        scan_source(tmp_path / "nope", max_bytes=BIG, max_files=10)
    assert str(tmp_path / "nope") in str(err.value)
    write(tmp_path, "file.py")
    with pytest.raises(SnapshotException, match="not a folder"):
        scan_source(tmp_path / "file.py", max_bytes=BIG, max_files=10)


def _scan_unprivileged(source: Path) -> str:
    """Scan ``source`` without root's right to read everything; returns the outcome as text.

    As root, the scan runs in a forked child that drops to ``nobody`` (so the test also runs in
    root containers); otherwise it runs in-process.
    """

    def outcome() -> str:
        try:
            plan = scan_source(source, max_bytes=BIG, max_files=100)
        except SnapshotException as err:
            return "error: " + str(err)
        return "files: " + ",".join(f.relpath for f in plan.files)

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return outcome()
    b"warm".decode("utf-8-sig")  # the child may not be able to import codecs from root's home
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_fd)
            os.setgid(65534)
            os.setuid(65534)
            text = outcome()
        except BaseException as err:
            text = f"crash: {err!r}"
        os.write(write_fd, text.encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return text


@pytest.fixture
def shared_src() -> Iterator[Path]:
    """A source folder that an unprivileged user can reach (pytest's tmp_path may be private)."""
    base = Path(tempfile.mkdtemp(prefix="trainyard-snap-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for folder in base.rglob("*"):
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o755)
        shutil.rmtree(base)


def test_unreadable_files_and_folders_are_named(shared_src: Path) -> None:
    write(shared_src, "ok.py")
    write(shared_src, "locked.py", mode=0o000)
    write(shared_src, "closed/f.py")
    (shared_src / "closed").chmod(0o000)
    write(shared_src, "listable/f.py")
    (shared_src / "listable").chmod(0o444)  # can list, cannot stat inside
    text = _scan_unprivileged(shared_src)
    assert text.startswith("error: "), text
    assert "3 file(s) or folder(s) cannot be read" in text
    assert "locked.py" in text and "closed/" in text and "listable/" in text
    assert ".trainyardignore" in text

    write(shared_src, ".trainyardignore", "closed/\nlocked.py\nlistable\n")
    assert _scan_unprivileged(shared_src) == "files: .trainyardignore,ok.py"


def test_unreadable_ignore_file_is_an_error(shared_src: Path) -> None:
    write(shared_src, "ok.py")
    write(shared_src, "pkg/.amlignore", "secrets/\n", mode=0o000)
    text = _scan_unprivileged(shared_src)
    assert text.startswith("error: Cannot read the ignore file"), text
    assert "pkg/.amlignore" in text


# ---- symlinks and odd entries -----------------------------------------------------------------


def test_symlinks(tmp_path: Path, src: Path, store: SnapshotStore) -> None:
    outside = write(tmp_path, "outside/secret.txt", "do not upload")
    write(src, "real/data.txt", "inside")
    (src / "to_outside.txt").symlink_to(outside)
    (src / "outside_dir").symlink_to(tmp_path / "outside")
    (src / "to_inside.txt").symlink_to(src / "real/data.txt")
    (src / "relative_link.txt").symlink_to("real/data.txt")
    (src / "dir_link").symlink_to(src / "real")
    (src / "real/loop").symlink_to(src)
    (src / "broken").symlink_to(src / "missing")
    plan = scan_source(src, max_bytes=BIG, max_files=100)
    assert [f.relpath for f in plan.files] == [
        "dir_link/data.txt",
        "real/data.txt",
        "relative_link.txt",
        "to_inside.txt",
    ]
    warned = "\n".join(plan.warnings)
    assert "to_outside.txt" in warned and "outside the source directory" in warned
    assert "outside_dir" in warned
    assert "loop" in warned and "broken" in warned

    info = store.take(plan)
    dest = store.restore(info.id, tmp_path / "wd")
    assert (dest / "to_inside.txt").read_text() == "inside"
    assert not (dest / "to_inside.txt").is_symlink()
    stored = b"".join(p.read_bytes() for p in (store.root / "objects").glob("*/*"))
    assert b"do not upload" not in stored


def test_ignored_outside_symlink_gives_no_warning(tmp_path: Path, src: Path) -> None:
    (src / "data").symlink_to(tmp_path)
    write(src, ".trainyardignore", "data\n")
    assert scan_source(src, max_bytes=BIG, max_files=10).warnings == ()


def test_special_files_and_unstorable_names_are_skipped_with_warnings(src: Path) -> None:
    write(src, "ok.py")
    write(src, "#autosave#", "editor backup")
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "s.sock"))
        plan = scan_source(src, max_bytes=BIG, max_files=10)
    finally:
        sock.close()
    assert [f.relpath for f in plan.files] == ["ok.py"]
    warned = "\n".join(plan.warnings)
    assert "#autosave#" in warned and "pipe" in warned and "s.sock" in warned


def test_source_dir_given_through_a_symlink(tmp_path: Path, src: Path) -> None:
    write(src, "train.py")
    (tmp_path / "alias").symlink_to(src)
    assert names(tmp_path / "alias") == ["train.py"]


# ---- store: take, dedup -----------------------------------------------------------------------


def test_take_twice_is_deduplicated(src: Path, store: SnapshotStore) -> None:
    write(src, "train.py", "print('hi')\n")
    write(src, "pkg/util.py", "X = 1\n")
    write(src, "pkg/copy_of_util.py", "X = 1\n")  # same content: one object
    plan = scan_source(src, max_bytes=BIG, max_files=100)
    first = store.take(plan)
    assert first.file_count == 3
    assert first.total_bytes == plan.total_bytes == 12 + 6 + 6
    assert first.new_bytes == 12 + 6
    assert len(objects(store.root)) == 2
    assert len(first.id) == 64

    again = store.take(scan_source(src, max_bytes=BIG, max_files=100))
    assert again.id == first.id
    assert again.new_bytes == 0
    assert len(objects(store.root)) == 2

    before = objects(store.root)
    write(src, "train.py", "print('changed')\n")
    changed = store.take(scan_source(src, max_bytes=BIG, max_files=100))
    assert changed.id != first.id
    assert changed.new_bytes == len("print('changed')\n")
    assert objects(store.root) - before == {hashlib.sha256(b"print('changed')\n").hexdigest()}
    assert before <= objects(store.root)
    assert store.exists(first.id) and store.exists(changed.id)


def test_same_tree_elsewhere_gets_same_id_and_exec_bit_counts(
    tmp_path: Path, store: SnapshotStore
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write(root, "run.sh", "#!/bin/sh\n", mode=0o755)
        write(root, "x.txt", "x")
    id_a = store.take(scan_source(a, max_bytes=BIG, max_files=10)).id
    assert store.take(scan_source(b, max_bytes=BIG, max_files=10)).id == id_a
    (b / "run.sh").chmod(0o644)
    info = store.take(scan_source(b, max_bytes=BIG, max_files=10))
    assert info.id != id_a and info.new_bytes == 0


def test_manifest_shape_and_objects_are_content_addressed(src: Path, store: SnapshotStore) -> None:
    big = os.urandom(2 * MB + 123)  # several read chunks
    write(src, "weights.bin", big)
    write(src, "bin/tool", "#!/bin/sh\necho hi\n", mode=0o750)
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    manifest = store.manifest(info.id)
    assert set(manifest) == {"id", "created", "files", "total_bytes", "file_count"}
    assert manifest["id"] == info.id
    assert manifest["file_count"] == 2 and manifest["total_bytes"] == len(big) + 18
    assert manifest["files"]["weights.bin"] == {
        "sha256": hashlib.sha256(big).hexdigest(),
        "size": len(big),
        "mode": 0o644,
    }
    assert manifest["files"]["bin/tool"]["mode"] == 0o755
    canonical = json.dumps(manifest["files"], sort_keys=True, separators=(",", ":"))
    assert info.id == hashlib.sha256(canonical.encode()).hexdigest()
    for obj in (store.root / "objects").glob("*/*"):
        assert hashlib.sha256(obj.read_bytes()).hexdigest() == obj.name
        assert obj.parent.name == obj.name[:2]
    assert list((store.root / "tmp").iterdir()) == []


def test_take_names_a_file_that_vanished_after_scan(src: Path, store: SnapshotStore) -> None:
    write(src, "a.py")
    write(src, "gone.py")
    plan = scan_source(src, max_bytes=BIG, max_files=10)
    (src / "gone.py").unlink()
    with pytest.raises(SnapshotException, match=r"gone\.py"):
        store.take(plan)
    assert store.ids() == []


# ---- restore ------------------------------------------------------------------------------------


def test_restore_round_trip(tmp_path: Path, src: Path, store: SnapshotStore) -> None:
    write(src, "train.py", "print(1)\n")
    write(src, "scripts/run.sh", "#!/bin/sh\n", mode=0o755)
    write(src, "deep/a/b/c.txt", "c")
    write(src, "empty.txt", "")
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    dest = store.restore(info.id, tmp_path / "wd" / "run1")
    assert dest == tmp_path / "wd" / "run1"
    restored = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert restored == ["deep/a/b/c.txt", "empty.txt", "scripts/run.sh", "train.py"]
    for rel in restored:
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    assert os.access(dest / "scripts/run.sh", os.X_OK)
    assert stat.S_IMODE((dest / "scripts/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "train.py").stat().st_mode) == 0o644
    # The restored copy is independent of the store.
    (dest / "train.py").write_text("edited")
    again = store.restore(info.id, tmp_path / "wd" / "run2")
    assert (again / "train.py").read_text() == "print(1)\n"
    # No staging folders are left behind.
    assert sorted(p.name for p in (tmp_path / "wd").iterdir()) == ["run1", "run2"]


def test_restore_into_empty_folder_ok_nonempty_refused(
    tmp_path: Path, src: Path, store: SnapshotStore
) -> None:
    write(src, "a.py")
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    (tmp_path / "empty").mkdir()
    assert (store.restore(info.id, tmp_path / "empty") / "a.py").exists()
    write(tmp_path, "full/keep.txt", "mine")
    with pytest.raises(SnapshotException, match="not an empty folder"):
        store.restore(info.id, tmp_path / "full")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]


def test_unknown_and_malformed_ids(tmp_path: Path, store: SnapshotStore) -> None:
    unknown = "0" * 64
    for bad in (unknown, "../../etc/passwd", "ABC"):
        assert not store.exists(bad)
        with pytest.raises(ArtifactNotFound):
            store.restore(bad, tmp_path / "wd")
        with pytest.raises(ArtifactNotFound):
            store.manifest(bad)
        with pytest.raises(ArtifactNotFound):
            store.restore_zip(bad, tmp_path / "x.zip")
        with pytest.raises(ArtifactNotFound):
            store.delete(bad)
        store.delete(bad, missing_ok=True)
    assert not (tmp_path / "wd").exists()


def test_tampered_manifest_cannot_write_outside(
    tmp_path: Path, src: Path, store: SnapshotStore
) -> None:
    write(src, "a.py", "A")
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    path = store.root / "manifests" / f"{info.id}.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["../escaped.py"] = manifest["files"]["a.py"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(PathSafetyError):
        store.restore(info.id, tmp_path / "wd" / "run")
    with pytest.raises(PathSafetyError):
        store.restore_zip(info.id, tmp_path / "out.zip")
    assert not (tmp_path / "wd" / "escaped.py").exists()
    assert not (tmp_path / "wd" / "run").exists()
    assert not (tmp_path / "out.zip").exists()


def test_missing_object_is_reported(tmp_path: Path, src: Path, store: SnapshotStore) -> None:
    write(src, "a.py", "A")
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    for obj in (store.root / "objects").glob("*/*"):
        obj.unlink()
    with pytest.raises(ArtifactNotFound, match=r"a\.py"):
        store.restore(info.id, tmp_path / "wd")


def test_restore_zip(tmp_path: Path, src: Path, store: SnapshotStore) -> None:
    write(src, "train.py", "print(1)\n")
    write(src, "bin/run.sh", "#!/bin/sh\n", mode=0o755)
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    out = tmp_path / "out"
    out.mkdir()
    zip_path = store.restore_zip(info.id, out)
    assert zip_path == out / f"{info.id}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == ["bin/run.sh", "train.py"]
        assert zf.read("train.py") == b"print(1)\n"
        assert stat.S_IMODE(zf.getinfo("bin/run.sh").external_attr >> 16) == 0o755
        zf.extractall(tmp_path / "unzipped")
    assert (tmp_path / "unzipped/bin/run.sh").read_text() == "#!/bin/sh\n"
    named = store.restore_zip(info.id, tmp_path / "deep/named.zip")
    assert named == tmp_path / "deep/named.zip"
    assert named.read_bytes() == zip_path.read_bytes()  # deterministic
    assert sorted(p.name for p in out.iterdir()) == [f"{info.id}.zip"]


# ---- delete and gc ------------------------------------------------------------------------------


def test_delete_and_gc(tmp_path: Path, store: SnapshotStore) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "shared.py", "same")
    write(a, "only_a.py", "AAAA")
    write(b, "shared.py", "same")
    write(b, "only_b.py", "BB")
    id_a = store.take(scan_source(a, max_bytes=BIG, max_files=10)).id
    id_b = store.take(scan_source(b, max_bytes=BIG, max_files=10)).id
    assert store.ids() == sorted([id_a, id_b])
    assert len(objects(store.root)) == 3

    # Nothing is unreferenced yet; young entries are protected by the grace period.
    assert store.gc(grace_seconds=0).deleted_objects == 0
    store.delete(id_a)
    assert not store.exists(id_a)
    assert store.gc().deleted_objects == 0  # default grace: a fresh object may belong to a take
    result = store.gc(grace_seconds=0)
    assert result.deleted_objects == 1 and result.freed_bytes == 4
    assert result.deleted_manifests == ()
    assert (store.restore(id_b, tmp_path / "wd") / "only_b.py").read_text() == "BB"

    # With keep_ids, manifests not listed go too, and then their objects.
    id_a = store.take(scan_source(a, max_bytes=BIG, max_files=10)).id
    result = store.gc(keep_ids=[id_a], grace_seconds=0)
    assert result.deleted_manifests == (id_b,)
    assert result.deleted_objects == 1 and result.freed_bytes == 2
    assert store.ids() == [id_a]
    assert (store.restore(id_a, tmp_path / "wd2") / "only_a.py").read_text() == "AAAA"


def test_gc_refuses_to_guess_with_a_damaged_manifest(src: Path, store: SnapshotStore) -> None:
    write(src, "a.py")
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    (store.root / "manifests" / f"{info.id}.json").write_text("{not json")
    with pytest.raises(SnapshotException, match="damaged"):
        store.gc(grace_seconds=0)
    assert len(objects(store.root)) == 1


def test_retake_refreshes_reused_objects_for_gc(src: Path, store: SnapshotStore) -> None:
    # A concurrent gc spares objects younger than its grace period; a take that reuses an object
    # must therefore make it young again, or gc could delete it before the new manifest lands.
    write(src, "a.py", "A")
    info = store.take(scan_source(src, max_bytes=BIG, max_files=10))
    store.delete(info.id)
    (obj,) = (store.root / "objects").glob("*/*")
    os.utime(obj, (1_000_000, 1_000_000))
    assert store.take(scan_source(src, max_bytes=BIG, max_files=10)).new_bytes == 0
    store.delete(info.id)
    assert store.gc(grace_seconds=3600).deleted_objects == 0
    assert obj.exists()
