"""v1's ``azureml.widgets.RunDetails``: a live view of a run, with no install step.

``RunDetails(run).show()`` returns at once, as v1's does. In a Jupyter or VS Code kernel it shows
ONE output (an ``IPython.display`` handle made with ``display_id=True``) that a background thread
updates in place until the run is terminal, ending on its final state: status, duration, metric
charts (inline SVG) and the streamed log of a script run; for a HyperDrive parent, the children
table (hyperparameters, best primary metric) and the primary metric's chart per child.
``show(wait=True)`` does the same in the foreground, so the cell ends with the run.

Outside a kernel (a terminal, a script) ``show()`` prints the view once and ``show(wait=True)``
redraws one rich ``Live`` view until the run is terminal. Interrupting a wait stops watching, not
the run.

Example::

    from trainyard.widgets import RunDetails
    details = RunDetails(run)
    details.show()          # returns at once; the output follows the run
    details.wait()          # optional: block until the view shows the final state
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from typing import Any

from trainyard.widgets._html import render_html
from trainyard.widgets._terminal import render_rich
from trainyard.widgets._view import LogTail, RunView, collect

#: How often the status is checked between full refreshes, so the final state shows promptly.
_STATUS_POLL_SECONDS = 1.0
#: Failed refreshes in a row after which the view stops and says why.
_MAX_ERRORS = 5


def _in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (notebook, lab, VS Code)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class RunDetails:
    """Live view of a run (script run, interactive run or HyperDrive sweep).

    ``refresh_seconds`` is how often the whole view is read again (v1 refreshed every 10–15 s);
    the status is checked every second so the view ends on the final state without delay.
    """

    def __init__(self, run_instance: Any, refresh_seconds: float = 10.0) -> None:
        self.run = run_instance
        self.refresh_seconds = refresh_seconds
        self._log = LogTail()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._handle: Any = None
        self.last_view: RunView | None = None
        #: The error that stopped the refreshes, if one did.
        self.error: BaseException | None = None

    # -- data ---------------------------------------------------------------------------------
    def _view(self) -> RunView:
        view = collect(self.run, self._log)
        self.last_view = view
        return view

    def get_widget_data(self, widget_settings: Any = None) -> dict[str, Any]:
        """The data the view shows, as plain JSON-able values (for custom front ends)."""
        return dataclasses.asdict(self._view())

    # -- showing ------------------------------------------------------------------------------
    def show(
        self, render_lib: Any = None, widget_settings: Any = None, *, wait: bool = False
    ) -> None:
        """Show the view; it follows the run until the run is terminal.

        ``render_lib`` and ``widget_settings`` are v1's and ignored. ``wait=True`` blocks until
        the run is terminal (and the view shows it); otherwise this returns at once.
        """
        self.stop()
        self._stop = threading.Event()
        if _in_kernel():
            self._show_in_kernel(wait)
        else:
            self._show_in_terminal(wait)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background refreshes end (the run is terminal and shown); returns
        ``False`` if ``timeout`` seconds passed first."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop(self) -> None:
        """Stop following the run (the output keeps its last content)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._thread = None

    def _show_in_kernel(self, wait: bool) -> None:
        # Imported as a module object: IPython is untyped, and absent where mypy may run.
        ipython_display: Any = importlib.import_module("IPython.display")
        HTML, display = ipython_display.HTML, ipython_display.display
        view = self._view()
        self._handle = display(HTML(render_html(view)), display_id=True)
        if view.terminal:
            return

        def update(new: RunView) -> None:
            self._handle.update(HTML(render_html(new)))

        if wait:
            self._follow(update)
            return
        self._thread = threading.Thread(
            target=self._follow, args=(update,), name=f"RunDetails-{view.run_id}", daemon=True
        )
        self._thread.start()

    def _show_in_terminal(self, wait: bool) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console()
        view = self._view()
        if not wait or view.terminal:
            console.print(render_rich(view))
            return
        with Live(render_rich(view), console=console, refresh_per_second=4) as live:
            self._follow(lambda new: live.update(render_rich(new), refresh=True))

    def _follow(self, update: Any) -> None:
        """Refresh until the run is terminal (or :meth:`stop`), then show the final state."""
        errors = 0
        next_full = time.monotonic() + self.refresh_seconds
        last_status = self.last_view.status if self.last_view else None
        try:
            while not self._stop.wait(min(_STATUS_POLL_SECONDS, self.refresh_seconds)):
                try:
                    status = self.run.get_status()
                    if status == last_status and time.monotonic() < next_full:
                        continue
                    view = self._view()
                    update(view)
                    errors = 0
                    last_status = view.status
                    next_full = time.monotonic() + self.refresh_seconds
                    if view.terminal:
                        return
                except Exception as exc:  # a store hiccup: try again, then give up visibly
                    errors += 1
                    if errors >= _MAX_ERRORS:
                        self.error = exc
                        if self.last_view is not None:
                            note = f"The view stopped refreshing after {errors} errors: {exc}"
                            update(dataclasses.replace(self.last_view, error=note))
                        return
        except KeyboardInterrupt:
            return
