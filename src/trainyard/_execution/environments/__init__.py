"""Environment building: normalised specs, content hashes, pip → uv configuration, the uv builder.

* :mod:`.spec` — :class:`EnvSpec` (what gets installed) and :func:`spec_hash` (the cache key);
  :mod:`.definition` reads an environment's dict form, :mod:`.conda` maps conda specs to pip;
* :mod:`.pins` — the one merge function for requirements; :mod:`.frameworks` — the framework
  constraint table and the releases estimators install;
* :mod:`.pipconfig` — :func:`read_pip_config` and :class:`PipConfig` (pip's settings as uv flags);
* :mod:`.builder` — :class:`EnvironmentBuilder` (cached, locked, atomic uv builds), over
  :mod:`.cache` (entries on disk) and :mod:`.uv` (the processes a build runs);
* :mod:`.curated` — the ``AzureML-…`` catalogue, as environment dicts.

Nothing here imports the public API (``trainyard.core``, ``trainyard.train``, ``trainyard.cli``):
it works on the dict form of an environment.

Example::

    import os, sys
    from pathlib import Path
    from trainyard._execution.environments import EnvSpec, EnvironmentBuilder, read_pip_config
    builder = EnvironmentBuilder(Path("/tmp/envs"), read_pip_config(os.environ))
    built = builder.build(EnvSpec.from_requirements(["six==1.16.0"]), log=sys.stdout)
"""

from __future__ import annotations

from .builder import EnvironmentBuilder, default_builder
from .cache import BuiltEnvironment, CachedEnvironment, parse_freeze, size_bytes
from .pipconfig import PipConfig, pip_config_files, read_pip_config
from .runtime import TrainyardRuntime
from .spec import EnvSpec, conda_to_pip, spec_hash

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
