"""Process-level set-up of a scoring worker, and the server's exit codes.

This is the service's own process (started by ``python -m trainyard._serving``), so setting its
environment and working directory here is the launcher's job, not library code reaching into a host.

Example::

    from trainyard._serving.process import prepare_process
    prepare_process(config)   # model-dir variables set, cwd = source directory, stdout line-buffered
"""

from __future__ import annotations

import io
import os
import sys

from trainyard._serving.config import (
    AZUREML_MODEL_DIR_ENV_VAR,
    MODEL_DIR_ENV_VAR,
    ServingConfig,
)

#: Clean shutdown (SIGTERM / SIGINT).
EXIT_OK = 0
#: Unexpected failure, e.g. the port is already in use (uvicorn's own code).
EXIT_ERROR = 1
#: Bad command-line arguments or configuration (argparse's code).
EXIT_USAGE = 2
#: The entry script failed to import or its ``init()`` raised (uvicorn's ``STARTUP_FAILURE``).
EXIT_INIT_FAILED = 3


def prepare_process(config: ServingConfig) -> None:
    """Make this process look like v1's scoring container before the entry script is imported.

    Sets :data:`~trainyard._serving.config.MODEL_DIR_ENV_VAR` and ``AZUREML_MODEL_DIR`` to the model
    directory (when one is given), changes the working directory to the app directory and makes stdout
    and stderr line-buffered so that logs reach the service log as they are written.

    Example::

        prepare_process(ServingConfig(entry_script="score.py", model_dir="trainyard-models/m/1"))
    """
    if config.model_dir is not None:
        os.environ[MODEL_DIR_ENV_VAR] = str(config.model_dir)
        os.environ[AZUREML_MODEL_DIR_ENV_VAR] = str(config.model_dir)
    os.chdir(config.app_directory)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and not stream.line_buffering:
            stream.reconfigure(line_buffering=True)
