"""The path-safety choke point: a corpus of hostile names, good names, and symlink escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainyard._store.artifacts.paths import safe_join, safe_relpath
from trainyard.exceptions import PathSafetyError, ValidationError
from trainyard.testing.paths import BAD_NAMES, NON_PORTABLE_NAMES

GOOD_NAMES = {
    "outputs/model.npz": "outputs/model.npz",
    "./a//b/": "a/b",
    "a/./b": "a/b",
    "a/b/.": "a/b",
    "model.npz": "model.npz",
    "outputs/model/": "outputs/model",
    "données/modèle.npz": "données/modèle.npz",
    "日本語/ファイル.bin": "日本語/ファイル.bin",
    "my file (final).txt": "my file (final).txt",
    " leading and trailing ": " leading and trailing ",
    "a~": "a~",
    "x/~": "x/~",
    "~$report.docx": "~$report.docx",
    ".hidden": ".hidden",
    "...a": "...a",
    "a..b": "a..b",
    "v1.2.3/..data": "v1.2.3/..data",
    "50%.txt": "50%.txt",
    "a%2fb": "a%2fb",  # the literal name is kept; its decoded form a/b is safe
    "at 10:30.txt": "at 10:30.txt",
    "a" * 255: "a" * 255,
    "/".join(["abcdefghi"] * 100): "/".join(["abcdefghi"] * 100),
    "é" * 127: "é" * 127,
}


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:40] for n in BAD_NAMES])
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(PathSafetyError) as info:
        safe_relpath(name)
    err = info.value
    assert isinstance(err, ValidationError)
    assert err.code == "UNSAFE_PATH"
    assert err.details["reason"]
    assert err.details["reason"] in err.message
    assert repr(name)[:40].rstrip("'") in err.message or len(name) > 200


@pytest.mark.parametrize("name", NON_PORTABLE_NAMES)
def test_non_portable_names_are_refused_only_when_asked(name: str) -> None:
    assert safe_relpath(name)  # a Linux folder store keeps them
    with pytest.raises(PathSafetyError) as info:
        safe_relpath(name, portable=True)
    assert info.value.code == "UNSAFE_PATH"


@pytest.mark.parametrize("name", list(GOOD_NAMES), ids=[repr(n)[:40] for n in GOOD_NAMES])
def test_good_names_are_portable(name: str) -> None:
    assert safe_relpath(name, portable=True) == GOOD_NAMES[name]


def test_corpus_is_big_enough() -> None:
    assert len(BAD_NAMES) >= 40
    assert len(set(BAD_NAMES)) == len(BAD_NAMES)


@pytest.mark.parametrize("name", list(GOOD_NAMES), ids=[repr(n)[:40] for n in GOOD_NAMES])
def test_good_names_are_normalised(name: str) -> None:
    normal = safe_relpath(name)
    assert normal == GOOD_NAMES[name]
    assert safe_relpath(normal) == normal  # idempotent


@pytest.mark.parametrize("value", [None, b"a/b", Path("a/b"), 3])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(PathSafetyError, match="must be a str"):
        safe_relpath(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "parent-directory"),
        ("/x", "absolute"),
        ("a\\b", "backslash"),
        ("C:x", "drive letter"),
        ("a#b", "'#'"),
        ("a;b", "';'"),
        ("a\x00b", "NUL"),
        ("~/x", "'~'"),
        ("", "empty"),
        ("a" * 2000, "longer than 1024"),
        ("%252e%252e%252fx", "parent-directory"),
    ],
)
def test_error_says_why(name: str, reason: str) -> None:
    with pytest.raises(PathSafetyError, match=reason):
        safe_relpath(name)


def test_overlong_name_is_shortened_in_the_message() -> None:
    with pytest.raises(PathSafetyError) as info:
        safe_relpath("x" * 5000)
    assert len(info.value.message) < 500


# -- safe_join ---------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "run"
    (r / "outputs").mkdir(parents=True)
    (r / "outputs" / "model.npz").write_bytes(b"weights")
    return r


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    o = tmp_path / "secret"
    o.mkdir()
    (o / "passwd").write_text("root:x:0:0")
    return o


def test_safe_join_normal(root: Path) -> None:
    assert safe_join(root, "./outputs//model.npz") == root.resolve() / "outputs" / "model.npz"
    assert safe_join(root, "outputs/new/file.txt") == root.resolve() / "outputs/new/file.txt"


@pytest.mark.parametrize("name", ["../secret/passwd", "/etc/passwd", "%2e%2e/secret/passwd"])
def test_safe_join_rejects_unsafe_names(root: Path, name: str) -> None:
    with pytest.raises(PathSafetyError):
        safe_join(root, name)


def test_symlinked_file_pointing_outside_is_rejected(root: Path, outside: Path) -> None:
    os.symlink(outside / "passwd", root / "outputs" / "leak")
    with pytest.raises(PathSafetyError, match="outside"):
        safe_join(root, "outputs/leak")


def test_symlinked_folder_pointing_outside_is_rejected_for_reads_and_writes(
    root: Path, outside: Path
) -> None:
    os.symlink(outside, root / "outputs" / "escape")
    with pytest.raises(PathSafetyError):
        safe_join(root, "outputs/escape/passwd")  # read of an existing file
    with pytest.raises(PathSafetyError):
        safe_join(root, "outputs/escape/new/file.txt")  # write of a new file
    with pytest.raises(PathSafetyError):
        safe_join(root, "outputs/escape")


def test_dangling_symlink_pointing_outside_is_rejected(root: Path, outside: Path) -> None:
    os.symlink(outside / "not-yet", root / "outputs" / "future")
    with pytest.raises(PathSafetyError):
        safe_join(root, "outputs/future")


def test_symlink_pointing_inside_is_fine(root: Path) -> None:
    os.symlink(root / "outputs" / "model.npz", root / "alias.npz")
    os.symlink("outputs", root / "out")  # relative link, inside
    assert safe_join(root, "alias.npz") == root.resolve() / "alias.npz"
    assert safe_join(root, "alias.npz").read_bytes() == b"weights"
    assert safe_join(root, "out/model.npz").read_bytes() == b"weights"


def test_relative_symlink_climbing_out_is_rejected(root: Path, outside: Path) -> None:
    os.symlink("../../secret", root / "outputs" / "up")
    with pytest.raises(PathSafetyError):
        safe_join(root, "outputs/up/passwd")


def test_symlink_loop_is_rejected(root: Path) -> None:
    os.symlink(root / "b", root / "a")
    os.symlink(root / "a", root / "b")
    with pytest.raises(PathSafetyError, match="loop"):
        safe_join(root, "a")


def test_root_given_through_a_symlink(tmp_path: Path, root: Path) -> None:
    alias = tmp_path / "alias-root"
    os.symlink(root, alias)
    assert safe_join(alias, "outputs/model.npz").read_bytes() == b"weights"
    assert safe_join(alias, "outputs/model.npz") == root.resolve() / "outputs/model.npz"


def test_sibling_folder_with_common_prefix_is_outside(tmp_path: Path, root: Path) -> None:
    sibling = tmp_path / "run-evil"
    sibling.mkdir()
    os.symlink(sibling, root / "s")
    with pytest.raises(PathSafetyError):
        safe_join(root, "s/x")
