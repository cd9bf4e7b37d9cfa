"""The scoring server that hosts a v1 entry script's ``init()`` / ``run()`` (aml-reference §9.5 to §9.7).

Start it as a process: ``python -m trainyard._serving --entry-script score.py --port 0`` (see
``__main__``). Importing this package is cheap: FastAPI and uvicorn load only in ``app`` / ``launcher``.

Example::

    from trainyard._serving import ServingConfig, generate_key, write_keys_file
    primary = generate_key()
    write_keys_file("keys.json", [primary, generate_key()])
    cfg = ServingConfig(entry_script="score.py", keys_file="keys.json", auth_enabled=True)
"""

from __future__ import annotations

from trainyard._serving.auth import (
    KeyStore,
    generate_key,
    hash_key,
    read_keys_file,
    write_keys_file,
)
from trainyard._serving.config import (
    AZUREML_MODEL_DIR_ENV_VAR,
    CONFIG_ENV_VAR,
    MODEL_DIR_ENV_VAR,
    ServingConfig,
)
from trainyard._serving.process import EXIT_INIT_FAILED, EXIT_OK, EXIT_USAGE

__all__ = [
    "AZUREML_MODEL_DIR_ENV_VAR",
    "CONFIG_ENV_VAR",
    "EXIT_INIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MODEL_DIR_ENV_VAR",
    "KeyStore",
    "ServingConfig",
    "generate_key",
    "hash_key",
    "read_keys_file",
    "write_keys_file",
]
