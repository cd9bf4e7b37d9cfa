"""The one choke point for every path that comes from outside.

Artifact names, model paths and archive members all pass through :func:`safe_relpath` (a pure check
and normalisation of the name) and, when they touch a real folder, :func:`safe_join` (which also
resolves symlinks and checks that the result stays inside the folder).

Percent-encoding is decoded repeatedly until it is stable, and every layer (plus its Unicode NFKC
form, which folds look-alikes such as the fullwidth dot and slash) is checked, so ``%2e%2e%2f`` and
``%252e%252e`` are caught. The decoding is only used for checking: the name that is returned keeps
its literal characters (``50%25.txt`` stays ``50%25.txt``), because a stored name must never change
meaning on its way in.

Example::

    from trainyard._store.artifacts.paths import safe_join, safe_relpath
    safe_relpath("./outputs//model.npz")          # 'outputs/model.npz'
    safe_join(Path("/runs/r1"), "outputs/model.npz")
    safe_relpath("../etc/passwd")                  # raises PathSafetyError
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from trainyard.exceptions import PathSafetyError

__all__ = ["MAX_NAME_CHARS", "MAX_SEGMENT_BYTES", "safe_join", "safe_relpath"]

#: Longest accepted name, in characters, before normalisation.
MAX_NAME_CHARS = 1024
#: Longest accepted path segment, in UTF-8 bytes (the usual file-system limit of 255).
MAX_SEGMENT_BYTES = 255
# Deeper nesting than this is not a real name: it is someone probing the decoder.
_MAX_DECODE_ROUNDS = 8

_DRIVE = re.compile(r"^[A-Za-z]:")
# What ``os.path.expanduser`` would expand: ``~`` alone or ``~user``.
_TILDE_USER = re.compile(r"^~[A-Za-z0-9_.-]*$")
_FORBIDDEN_CHARS = {"#": "'#' (a URL fragment marker)", ";": "';' (a parameter separator)"}
# IIS-style ``%uXXXX`` escapes: decoded as one more layer, so they cannot hide a dot or a slash.
_PERCENT_U = re.compile(r"%u([0-9A-Fa-f]{4})")
# A URL (``file:///etc/passwd``, ``http://…``): a name, never something to fetch or resolve.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
# Windows device names, with or without an extension: on a Windows client that downloads the file
# they open a device instead (``NUL``, ``COM1``, ``aux.txt``).
_DEVICE = re.compile(
    r"^(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])(\..*)?$", re.I
)


def _reject(name: str, reason: str) -> PathSafetyError:
    shown = name if len(name) <= 200 else name[:200] + "..."
    return PathSafetyError(
        f"Unsafe path {shown!r}: {reason}. Use a relative POSIX path inside the folder, "
        "such as 'outputs/model.npz'.",
        path=shown,
        reason=reason,
    )


def _layers(name: str) -> list[str]:
    """The name, each percent-decoded layer until stable, and the NFKC form of each."""
    layers = [name]
    current = name
    for _ in range(_MAX_DECODE_ROUNDS):
        try:
            decoded = unquote(current, errors="strict")
        except UnicodeDecodeError:
            raise _reject(
                name, "percent-encodes bytes that are not UTF-8 (an overlong or broken sequence)"
            ) from None
        decoded = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), decoded)
        if decoded == current:
            break
        layers.append(decoded)
        current = decoded
    else:
        raise _reject(name, f"percent-encoding nested more than {_MAX_DECODE_ROUNDS} levels deep")
    folded = [unicodedata.normalize("NFKC", layer) for layer in layers]
    return layers + [f for f, layer in zip(folded, layers, strict=True) if f != layer]


def _check_layer(original: str, layer: str) -> None:
    for ch in layer:
        if unicodedata.category(ch) == "Cc":
            what = "a NUL byte" if ch == "\x00" else f"the control character {ch!r}"
            raise _reject(original, f"contains {what}")
        if ch == "\\":
            raise _reject(original, "contains a backslash (use '/' as the separator)")
        if ch in _FORBIDDEN_CHARS:
            raise _reject(original, f"contains {_FORBIDDEN_CHARS[ch]}")
    if layer.startswith("/"):
        raise _reject(original, "is an absolute path")
    if _DRIVE.match(layer):
        raise _reject(original, "starts with a Windows drive letter")
    if _URL.match(layer):
        raise _reject(original, "is a URL, not a path")
    segments = layer.split("/")
    if _TILDE_USER.match(segments[0]):
        raise _reject(original, "starts with '~' home-directory expansion")
    for seg in segments:
        # ``..`` is traversal; Windows also trims trailing dots and spaces, so ``.. `` and ``...``
        # mean the same. A lone ``.`` is harmless and dropped during normalisation.
        if seg and seg != "." and seg.rstrip(". ") == "":
            raise _reject(original, f"contains the parent-directory segment {seg!r}")


def _check_portable(original: str, layer: str) -> None:
    for seg in layer.split("/"):
        if seg not in ("", ".") and seg.endswith("."):
            raise _reject(original, f"has a segment ending in '.' ({seg!r}; Windows drops it)")
        if _DEVICE.match(seg.rstrip(". ")):
            raise _reject(original, f"names the Windows device {seg!r}")


def safe_relpath(name: str, *, portable: bool = False) -> str:
    """Check a user-supplied name and return it as a normalised relative POSIX path.

    The result has no leading ``./``, no empty or ``.`` segments, no duplicate or trailing slash.
    Raises :class:`~trainyard.exceptions.PathSafetyError` (naming the input and the reason) for: a
    non-string, an empty name, NUL or other control characters, ``..`` segments, absolute paths,
    backslashes (so UNC paths), Windows drive letters, ``#``, ``;``, a leading ``~`` or ``~user``,
    names over :data:`MAX_NAME_CHARS` characters or segments over :data:`MAX_SEGMENT_BYTES` bytes,
    URLs (``file:///…``), percent-encoding of bytes that are not UTF-8, and any of these
    hidden behind (repeated, or IIS-style ``%uXXXX``) percent-encoding or Unicode look-alikes.
    With ``portable=True`` (the server: its files are downloaded by clients on any system) it also
    refuses Windows device names (``CON``, ``nul.txt``, ``COM1``) and segments ending in ``.``
    (Windows drops the dot); a local folder store accepts those, as Linux does (``aux.py``).

    Example::

        safe_relpath("./a//b/")            # 'a/b'
        safe_relpath("outputs/%2e%2e/x")   # PathSafetyError: ... contains the parent-directory segment '..'
    """
    if not isinstance(name, str):
        raise PathSafetyError(
            f"A path must be a str, not {type(name).__name__}: {name!r}.",
            path=repr(name),
            reason="not a string",
        )
    if name == "":
        raise _reject(name, "is empty")
    if len(name) > MAX_NAME_CHARS:
        raise _reject(name, f"is longer than {MAX_NAME_CHARS} characters ({len(name)})")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _reject(name, "is not valid Unicode (lone surrogate)") from None
    for layer in _layers(name):
        _check_layer(name, layer)
        if portable:
            _check_portable(name, layer)
    segments = [seg for seg in name.split("/") if seg not in ("", ".")]
    if not segments:
        raise _reject(name, "names no file or folder")
    for seg in segments:
        size = len(seg.encode("utf-8"))
        if size > MAX_SEGMENT_BYTES:
            raise _reject(name, f"has a segment of {size} bytes (limit {MAX_SEGMENT_BYTES})")
    return "/".join(segments)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def safe_join(root: Path, name: str) -> Path:
    """Join a user-supplied ``name`` to ``root``, refusing anything that would land outside it.

    ``name`` goes through :func:`safe_relpath`; then the joined path is resolved (symlinks in
    existing parents and in the file itself are followed) and must stay inside ``root.resolve()``,
    otherwise :class:`~trainyard.exceptions.PathSafetyError` is raised (a symlink in the run's
    folder that points elsewhere, or a symlink loop). The returned path is ``root.resolve() / name``
    *without* the final symlinks resolved, so that replacing or deleting it acts on the entry the
    caller named.

    Example::

        safe_join(Path("/data/run1"), "outputs/./model.npz")  # Path('/data/run1/outputs/model.npz')
    """
    rel = safe_relpath(name)
    real_root = os.path.realpath(root)
    joined = os.path.join(real_root, *rel.split("/"))
    resolved = os.path.realpath(joined)
    probe = resolved
    while _inside(probe, real_root) and probe != real_root:
        if os.path.islink(probe):
            # realpath (non-strict) leaves a link it cannot follow in place: a loop.
            raise _reject(name, "goes through a symlink loop")
        probe = os.path.dirname(probe)
    if not _inside(resolved, real_root):
        raise _reject(name, f"resolves through a symlink to {resolved!r}, outside {real_root!r}")
    return Path(joined)
