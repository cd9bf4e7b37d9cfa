"""trainyard: a self-hosted ML training platform with the Azure ML SDK v1 API."""

from trainyard._version import __version__

__all__ = ["__version__"]
