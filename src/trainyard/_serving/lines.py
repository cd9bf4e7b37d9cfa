"""Whole lines to the service log: one write per message, whichever thread writes.

A worker writes from several threads at once: the event loop (one access line per request), the
thread that runs the entry script's ``init()`` and the threads that run ``run()``, where the user's
``print`` writes its text and its newline as two calls. Unguarded, an access line can land between
the two and the service log reads ``init: ready2026-12-05T00:03:30Z GET /ready …``. :func:`say`
writes our own messages in one call; :func:`install_whole_lines` makes ``sys.stdout`` and
``sys.stderr`` keep each thread's unfinished line to itself and pass on only whole lines (or what
an explicit ``flush()`` asks for).

Example::

    from trainyard._serving.lines import install_whole_lines, say
    install_whole_lines()            # once, in the worker process
    say("trainyard-serving: ready")
"""

from __future__ import annotations

import io
import sys
import threading
from typing import Any, TextIO


def say(text: str, *, error: bool = False) -> None:
    """Write ``text`` to stdout (stderr with ``error``) as whole lines, in one write, and flush.

    ``print`` writes the text and its newline separately, so a line printed by the thread that runs
    ``init()`` could take in an access line the event loop wrote between the two; one write keeps
    each line whole in the service log.

    Example::

        say("trainyard-serving: ready")
    """
    stream = sys.stderr if error else sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


class WholeLines(io.TextIOBase):
    """A text stream over ``target`` that writes only whole lines, each thread's kept apart."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        """Keep ``text`` until its line ends; pass each finished line on in one write."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        held: str = getattr(self._pending, "text", "") + text
        cut = held.rfind("\n") + 1
        self._pending.text = held[cut:]
        if cut:
            with self._lock:
                self._target.write(held[:cut])
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        """Pass on this thread's unfinished line too, and flush the stream below."""
        held: str = getattr(self._pending, "text", "")
        self._pending.text = ""
        with self._lock:
            if held:
                self._target.write(held)
            self._target.flush()

    def fileno(self) -> int:
        """The file descriptor of the stream below (for ``faulthandler``, subprocesses)."""
        return self._target.fileno()

    def isatty(self) -> bool:
        """Whether the stream below is a terminal."""
        return self._target.isatty()

    def writable(self) -> bool:
        """Always: this stream is for writing."""
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The encoding of the stream below."""
        return self._target.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        """The error handler of the stream below."""
        return self._target.errors

    @property
    def buffer(self) -> Any:
        """The binary buffer of the stream below, for code that writes bytes."""
        return self._target.buffer


def install_whole_lines() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` :class:`WholeLines` streams (once per process)."""
    if not isinstance(sys.stdout, WholeLines):
        sys.stdout = WholeLines(sys.stdout)
    if not isinstance(sys.stderr, WholeLines):
        sys.stderr = WholeLines(sys.stderr)


__all__ = ["WholeLines", "install_whole_lines", "say"]
