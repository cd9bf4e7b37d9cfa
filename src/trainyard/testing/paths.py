"""The hostile-path corpus: names every path-taking API of trainyard must refuse.

Two lists, used by the path-safety tests of the choke point (``safe_relpath``) and by the server's
corpus test, which sends each of these through every route that takes a name or a path.

Example::

    from trainyard.testing.paths import BAD_NAMES
    for name in BAD_NAMES:
        with pytest.raises(PathSafetyError):
            safe_relpath(name)
"""

from __future__ import annotations

from trainyard._store.artifacts.paths import MAX_NAME_CHARS

__all__ = ["BAD_NAMES", "NON_PORTABLE_NAMES"]

BAD_NAMES = [
    # parent-directory traversal, in many spellings
    "..",
    "../x",
    "../../etc/passwd",
    "a/../../x",
    "a/..",
    "a/../b",
    "./../x",
    "a//..//x",
    "..\\x",
    "a\\..\\..\\x",
    ".. /x",
    "a/.../b",
    # absolute paths and UNC
    "/x",
    "/etc/passwd",
    "//server/share/x",
    "\\\\server\\share",
    "\\x",
    # backslashes anywhere
    "a\\b",
    # Windows drive letters
    "C:\\x",
    "c:/x",
    "C:x",
    "z:",
    # URL fragment / parameter characters
    "a#b",
    "#",
    "a;b",
    "outputs/model.npz;rm -rf",
    # percent-encoded traversal
    "%2e%2e/x",
    "%2E%2E%2Fx",
    "..%2fx",
    "%2e%2e%5cx",
    "a/%2e%2e/%2e%2e/x",
    "%2fetc%2fpasswd",
    "%5c%5cserver%5cshare",
    "%43%3a%2fx",
    "a%23b",
    "a%3bb",
    # double and deeper encodings
    "%252e%252e%252fx",
    "%252e%252e/x",
    "%25252e%25252e%25252fx",
    "%25%32%65%25%32%65/x",
    # NUL and control characters, raw and encoded
    "a\x00b",
    "\x00",
    "a%00b",
    "a%2500b",
    "a\nb",
    "a\rb",
    "tab\there",
    "del\x7f",
    "c1\x85x",
    # home-directory expansion
    "~/x",
    "~",
    "~root/.ssh/id_rsa",
    "%7e/x",
    # Unicode look-alikes that NFKC folds into traversal
    "\uff0e\uff0e\uff0fx",
    "a/\u2025/b",
    "\uff3cx",
    # empty and dot-only names
    "",
    ".",
    "./",
    "././/.",
    # overlong names and segments
    "a" * (MAX_NAME_CHARS + 1),
    "a/" + "b" * 256,
    "é" * 128,
    # too deeply nested encoding
    "%" + "25" * 12 + "2e",
    # lone surrogates (undecodable bytes smuggled through surrogateescape)
    "bad\udcff",
    # more spellings of traversal and absolute paths
    "....//x",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%c0%ae%c0%ae/x",
    "..%c0%afx",
    "%uff0e%uff0e/x",
    "\u2024\u2024/x",
    "file:///etc/passwd",
]

#: Names a local folder store accepts (Linux does) but the server refuses, because the clients that
#: download a workspace's files may run Windows: device names (the download would open a device)
#: and trailing dots (Windows drops them, so ``a.`` and ``a`` would be one file).
NON_PORTABLE_NAMES = [
    "CON",
    "con.txt",
    "outputs/NUL",
    "aux.tar.gz",
    "COM1",
    "lpt9.log",
    "outputs/prn /x",
    "a.",
    "outputs/model.",
    "%43%4f%4e",
]
