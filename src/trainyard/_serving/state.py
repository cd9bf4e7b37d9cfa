"""One worker's lifecycle: initializing → ready (script loaded, ``init()`` done) or failed.

Example::

    state = ServiceState()
    threading.Thread(target=initialise, args=(config, state, exit_on_init_failure)).start()
    ...
    if state.script is not None:
        state.script.run('{"data": [1]}')
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from trainyard._serving.config import ServingConfig
from trainyard._serving.lines import say
from trainyard._serving.loader import ScoringScript, load_scoring_script
from trainyard._serving.logfile import finish_active_log
from trainyard._serving.process import EXIT_INIT_FAILED
from trainyard.exceptions import WebserviceException

INITIALIZING = "initializing"
READY = "ready"
FAILED = "failed"


class ServiceState:
    """Per-worker state, written once by the init thread and read by the event loop.

    ``phase`` is ``"initializing"``, ``"ready"`` or ``"failed"``; ``script`` is set (before ``phase``
    becomes ready) once ``init()`` returned; ``failure`` holds the traceback text after a failure.

    Example::

        state = ServiceState()
        state.phase  # 'initializing'
    """

    def __init__(self) -> None:
        self.phase = INITIALIZING
        self.script: ScoringScript | None = None
        self.failure: str | None = None


def exit_on_init_failure(traceback_text: str) -> None:
    """Default failure hook: flush the logs and end the process with ``EXIT_INIT_FAILED``.

    ``os._exit`` is deliberate: the worker must die even though its event loop is still serving, so
    that the service manager (or uvicorn's supervisor) sees the failure and marks the service Failed.

    Example::

        create_app(config, on_init_failure=exit_on_init_failure)  # the default
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    finish_active_log()  # the traceback must be in the service log before anyone sees the exit
    os._exit(EXIT_INIT_FAILED)


def initialise(
    config: ServingConfig, state: ServiceState, on_failure: Callable[[str], None]
) -> None:
    """Import the entry script and call its ``init()``, recording the outcome in ``state``.

    On failure the traceback goes to stderr, ``state`` becomes ``"failed"`` and ``on_failure`` is called
    with the traceback text. Meant to run in its own thread so the server answers probes meanwhile.

    Example::

        initialise(config, state, on_failure=lambda tb: None)
    """
    started = time.perf_counter()
    say(f"trainyard-serving: loading {config.entry_script} (pid {os.getpid()})")
    try:
        script = load_scoring_script(config.entry_script, config.source_directory)
        script.call_init()
    except WebserviceException as err:
        text = str(err.details.get("traceback") or err.message)
        phase = err.details.get("phase", "init")
        say(
            f"trainyard-serving: {phase} failed for {config.entry_script.name}:\n{text}", error=True
        )
        state.failure = text
        state.phase = FAILED
        on_failure(text)
        return
    state.script = script
    state.phase = READY
    elapsed = time.perf_counter() - started
    say(f"trainyard-serving: init() completed in {elapsed:.2f}s; ready")
