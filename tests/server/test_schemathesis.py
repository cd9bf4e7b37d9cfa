"""schemathesis against the served OpenAPI document of a live server: no input gets a 5xx.

Examples are bounded (a few per operation, no shrinking) so the run takes seconds, not minutes.
The calls carry the bootstrap admin's token, so they reach the handlers rather than stopping at
authentication.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from trainyard._store.rest.tracking import RestTrackingStore
from trainyard.server.app import create_app
from trainyard.server.config import ServerConfig
from trainyard.testing.server import LiveServer, start_server


def _document() -> dict[str, object]:
    """The OpenAPI document the server serves (built by the same app; the last test checks that
    the live server serves exactly this)."""
    folder = Path(tempfile.mkdtemp(prefix="ty-openapi-"))
    try:
        config = ServerConfig(store_url=f"sqlite:///{folder / 'ty.db'}", artifacts=folder)
        return create_app(config).openapi()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("schemathesis")
    server = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    RestTrackingStore(server.url, server.admin_token).ensure_workspace("team")
    yield server
    server.stop()


@schema.parametrize()
@settings(
    max_examples=6,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_5xx(case: schemathesis.Case, live: LiveServer) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {live.admin_token}"}
    response = case.call(base_url=live.url, timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}\n"
        f"{case.as_curl_command()}"
    )


def test_the_document_is_the_served_one(live: LiveServer) -> None:
    with urllib.request.urlopen(f"{live.url}/openapi.json", timeout=30) as resp:
        assert json.loads(resp.read()) == DOCUMENT
    assert len(DOCUMENT["paths"]) > 40  # type: ignore[arg-type]
