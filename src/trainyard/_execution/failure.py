"""What a failed script's traceback says, kept whole: :func:`parse_traceback`.

The error a failed run records keeps the exception's type, its whole message (every line, notes
included) and the last frames, not only the traceback's last line. A chained exception also names
what it was raised from.

Example::

    parse_traceback(log_tail)
    # {"exceptionType": "ValueError", "message": "ValueError: bad value\\nsecond line",
    #  "traceback": "Traceback (most recent call last):\\n  File ...", "cause": "KeyError: 'x'"}
"""

from __future__ import annotations

import re
from typing import Any

_HEADER = "Traceback (most recent call last):"
_CHAINS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_TYPE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")
#: torch.distributed prefixes each line of an uncaught exception with its rank: ``[rank1]: ``.
_RANK_PREFIX = re.compile(r"^\[rank\d+\]: ?", re.MULTILINE)
#: Frames kept (the innermost), lines and characters of the exception's own text kept.
MAX_FRAMES = 12
MAX_MESSAGE_LINES = 60
MAX_MESSAGE_CHARS = 8000


def parse_traceback(text: str) -> dict[str, Any] | None:
    """The last Python traceback in ``text`` as error fields, or ``None`` if there is none
    (torch.distributed's ``[rankN]: `` line prefixes are dropped first)."""
    text = _RANK_PREFIX.sub("", text)
    start = text.rfind(_HEADER)
    if start < 0:
        return None
    lines = text[start:].rstrip().splitlines()
    i = 1
    frames: list[list[str]] = []
    while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
        if lines[i].startswith("  File "):
            frames.append([lines[i]])
        elif frames and lines[i].strip():
            frames[-1].append(lines[i])
        i += 1
    exc_lines = lines[i:]
    while exc_lines and not exc_lines[-1].strip():
        exc_lines.pop()
    if not exc_lines:
        return None
    exc_lines = exc_lines[:MAX_MESSAGE_LINES]
    message = "\n".join(exc_lines)[:MAX_MESSAGE_CHARS]
    kept = frames[-MAX_FRAMES:]
    body = [_HEADER]
    if len(frames) > len(kept):
        body.append(f"  ... ({len(frames) - len(kept)} outer frames left out)")
    body += [ln for frame in kept for ln in frame]
    body.append(message)
    match = _TYPE.match(exc_lines[0])
    out: dict[str, Any] = {
        "exceptionType": match.group(1) if match else "",
        "message": message,
        "traceback": "\n".join(body),
    }
    cause = _cause(text[:start])
    if cause:
        out["cause"] = cause
    return out


def _cause(before: str) -> str | None:
    """The exception line of the traceback this one was chained from, if any."""
    lines = [ln for ln in before.rstrip().splitlines() if ln.strip()]
    if not lines or lines[-1].strip() not in _CHAINS:
        return None
    inner = parse_traceback("\n".join(lines[:-1]))
    return str(inner["message"]).splitlines()[0] if inner else None
