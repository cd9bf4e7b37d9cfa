"""Reading a run's logs by offset and following them live, for :class:`~trainyard.core.run.Run`.

``read_log`` is the primitive (bytes from an offset; a submitted run's comes from its compute
backend, live); ``read_log_lines`` keeps to whole lines and ``follow_log`` yields them as the log
grows until the run ends. ``wait_for_completion(show_output=True)`` and ``trainyard runs logs -f``
are built on these two, so there is one way to stream a log.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from trainyard._lifecycle import RunStatus

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard.settings import Settings


class RunLogsMixin:
    """Needs ``_ctx``, ``_settings``, ``_key``, ``get_file_names`` and ``get_status``."""

    _ctx: WorkspaceContext
    _settings: Settings

    if TYPE_CHECKING:  # provided by RunFilesMixin and Run

        def _key(self, name: str) -> str: ...

        def get_file_names(self) -> builtins.list[str]: ...

        def get_status(self) -> str: ...

    def get_log_names(self) -> builtins.list[str]:
        """Names of the run's log files so far (``user_logs/std_log.txt``, ``system_logs/…``)."""
        return [
            n
            for n in self.get_file_names()
            if n.startswith(("user_logs/", "system_logs/", "azureml-logs/"))
        ]

    def read_log_lines(self, name: str, offset: int = 0, final: bool = False) -> bytes:
        """Every *complete* line of log ``name`` from ``offset`` (a line still being written
        waits for the next call, so it is shown once, whole); ``final`` (the log is complete)
        includes a last line without a newline. The next offset is ``offset + len(result)``."""
        out = bytearray()
        while True:
            chunk = self.read_log(name, offset + len(out))
            if not chunk:
                return bytes(out)
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                if not final and len(chunk) < (1 << 20):
                    return bytes(out)
                cut = len(chunk)
            out += chunk[:cut]

    def follow_log(
        self, name: str, offset: int = 0, interval: float | None = None
    ) -> Iterator[bytes]:
        """Yield the log's new complete lines as it grows until the run has ended, then the rest.

        Example::

            for chunk in run.follow_log("user_logs/std_log.txt"):
                sys.stdout.buffer.write(chunk)
        """
        pause = interval if interval is not None else max(0.05, self._settings.polling_interval_min)
        while True:
            done = RunStatus.parse(self.get_status()).is_terminal()
            chunk = self.read_log_lines(name, offset, final=done)
            if chunk:
                offset += len(chunk)
                yield chunk
            if done:
                return
            time.sleep(pause)

    def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Up to ``limit`` bytes of log ``name`` from byte ``offset`` (empty when there are none
        yet): follow a log by calling again with the offset advanced by what was read."""
        from trainyard.exceptions import ArtifactNotFound

        try:
            with self._ctx.artifacts.open(self._key(name)) as fh:
                fh.seek(offset)
                return fh.read(limit)
        except ArtifactNotFound:
            return b""
