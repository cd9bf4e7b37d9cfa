"""Key auth (aml-reference §9.7): Bearer keys, 401 without detail, rotation without a restart."""

from __future__ import annotations

import json

import httpx
import pytest

from trainyard.core import Workspace
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.webservice import AciWebservice, Webservice
from trainyard.exceptions import WebserviceException


@pytest.fixture(scope="module")
def service(ws: Workspace, model7: Model, inference: InferenceConfig) -> AciWebservice:
    config = AciWebservice.deploy_configuration(auth_enabled=True)
    svc = Model.deploy(ws, "auth-svc", [model7], inference, config)
    svc.wait_for_deployment()
    assert isinstance(svc, AciWebservice)
    return svc


def _post(service: AciWebservice, key: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(service.scoring_uri or "", content='{"data": [1]}', headers=headers)


def test_two_distinct_url_safe_keys(service: AciWebservice) -> None:
    primary, secondary = service.get_keys()
    assert primary != secondary
    for key in (primary, secondary):
        assert len(key) >= 43  # 32 random bytes, base64url
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_keys_file_holds_only_hashes(ws: Workspace, service: AciWebservice) -> None:
    primary, secondary = service.get_keys()
    text = (ws.path / "services" / "auth-svc" / "keys.json").read_text()
    assert primary not in text and secondary not in text
    assert len(json.loads(text)["key_hashes"]) == 2


def test_run_sends_the_primary_key(service: AciWebservice) -> None:
    assert service.run('{"data": [2]}') == [14]


def test_both_keys_work_over_raw_http(service: AciWebservice) -> None:
    primary, secondary = service.get_keys()
    assert _post(service, primary).text == "[7]"
    assert _post(service, secondary).text == "[7]"


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Bearer", "Basic dXNlcjpwYXNz"])
def test_missing_or_wrong_key_is_401_without_detail(
    service: AciWebservice, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = httpx.post(service.scoring_uri or "", content='{"data": [1]}', headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {"error": "Unauthorized"}
    primary, _ = service.get_keys()
    assert primary not in resp.text


def test_liveness_stays_public(service: AciWebservice) -> None:
    base = (service.scoring_uri or "").rsplit("/", 1)[0]
    assert httpx.get(f"{base}/").status_code == 200
    assert httpx.get(service.swagger_uri or "").status_code == 401


def test_regen_primary_rotates_and_secondary_keeps_working(
    ws: Workspace, service: AciWebservice
) -> None:
    old_primary, secondary = service.get_keys()
    other_client = Webservice(ws, "auth-svc")  # holds the old key until it sees a 401
    service.regen_key("Primary")
    new_primary, same_secondary = service.get_keys()
    assert new_primary != old_primary and same_secondary == secondary
    assert _post(service, old_primary).status_code == 401
    assert _post(service, new_primary).text == "[7]"
    assert _post(service, secondary).text == "[7]"
    assert other_client.run('{"data": [1]}') == [7]  # re-read the keys after the 401


def test_regen_secondary_with_a_chosen_key(service: AciWebservice) -> None:
    primary, old_secondary = service.get_keys()
    service.regen_key("Secondary", set_key="my-own-secondary-key-0123456789abcdef")
    assert service.get_keys() == (primary, "my-own-secondary-key-0123456789abcdef")
    assert _post(service, old_secondary).status_code == 401
    assert _post(service, "my-own-secondary-key-0123456789abcdef").status_code == 200


def test_regen_key_rejects_unknown_names(service: AciWebservice) -> None:
    with pytest.raises(WebserviceException, match="'Primary' or 'Secondary'"):
        service.regen_key("Tertiary")
    with pytest.raises(WebserviceException, match="Token auth"):
        service.get_token()


def test_the_database_holds_only_the_keys_hashes(ws: Workspace, service: AciWebservice) -> None:
    import stat

    primary, secondary = service.get_keys()
    record = service.get_record().data
    assert "primaryKey" not in {k for k, v in record.items() if v}
    assert record["primaryKeyHash"] != primary
    db = (ws.path / "trainyard.db").read_bytes()
    wal = ws.path / "trainyard.db-wal"
    db += wal.read_bytes() if wal.exists() else b""
    assert primary.encode() not in db and secondary.encode() not in db
    secret = ws.path / "services" / "auth-svc" / "keys.secret.json"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700


def test_keys_kept_on_another_machine_are_not_read_from_the_store(
    ws: Workspace, service: AciWebservice
) -> None:
    secret = ws.path / "services" / "auth-svc" / "keys.secret.json"
    moved = secret.with_name("moved.json")
    secret.rename(moved)
    try:
        with pytest.raises(WebserviceException, match="kept only on the machine"):
            Webservice(ws, "auth-svc").get_keys()
    finally:
        moved.rename(secret)
    assert Webservice(ws, "auth-svc").get_keys() == service.get_keys()
