"""Environment building: normalised specs, content hashes, pip → uv configuration, the uv builder.

* :mod:`.spec` — :class:`EnvSpec` (what gets installed) and :func:`spec_hash` (the cache key);
* :mod:`.pipconfig` — :func:`read_pip_config` and :class:`PipConfig` (pip's settings as uv flags);
* :mod:`.builder` — :class:`EnvironmentBuilder` (cached, locked, atomic uv builds);
* :mod:`.curated` — the ``AzureML-…`` catalogue (imported on demand: it needs ``trainyard.core``).

Example::

    import os, sys
    from pathlib import Path
    from trainyard._execution.environments import EnvSpec, EnvironmentBuilder, read_pip_config
    builder = EnvironmentBuilder(Path("/tmp/envs"), read_pip_config(os.environ))
    built = builder.build(EnvSpec.from_requirements(["six==1.16.0"]), log=sys.stdout)
"""

from __future__ import annotations

from .builder import (
    BuiltEnvironment,
    CachedEnvironment,
    EnvironmentBuilder,
    default_builder,
    parse_freeze,
    size_bytes,
)
from .pipconfig import PipConfig, pip_config_files, read_pip_config
from .spec import EnvSpec, TrainyardRuntime, conda_to_pip, spec_hash

__all__ = [
    "BuiltEnvironment",
    "CachedEnvironment",
    "EnvSpec",
    "EnvironmentBuilder",
    "PipConfig",
    "TrainyardRuntime",
    "conda_to_pip",
    "default_builder",
    "parse_freeze",
    "pip_config_files",
    "read_pip_config",
    "size_bytes",
    "spec_hash",
]
