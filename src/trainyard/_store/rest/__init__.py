"""The REST client of ``trainyard server``: the metadata and bytes seams over HTTP (stdlib only)."""
