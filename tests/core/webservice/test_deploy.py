"""``Model.deploy`` and scoring over real HTTP (aml-reference §9.3–§9.5, §11 quirk 6).

One service is deployed for the module (scoring tests share it); the naming, clash and delete tests
deploy their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from trainyard.core import Workspace
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.webservice import (
    AciWebservice,
    LocalWebservice,
    Webservice,
)
from trainyard.exceptions import WebserviceException

from .conftest import register_k

SMALL_LIMIT = 4096


@pytest.fixture(scope="module")
def service(ws: Workspace, model7: Model, inference: InferenceConfig) -> AciWebservice:
    config = AciWebservice.deploy_configuration(
        cpu_cores=1,
        memory_gb=1,
        tags={"name": "k", "framework": "none"},
        description="multiplies by k",
        max_request_bytes=SMALL_LIMIT,
        auth_enabled=False,  # the raw-HTTP tests below call it as v1's open default allowed
    )
    svc = Model.deploy(ws, "score-svc", [model7], inference, config)
    assert isinstance(svc, AciWebservice)
    svc.wait_for_deployment()
    return svc


def test_deploy_returns_while_transitioning_two_workers(
    ws: Workspace, model7: Model, inference: InferenceConfig
) -> None:
    config = LocalWebservice.deploy_configuration(worker_count=2)
    svc = Model.deploy(ws, "early-svc", [model7], inference, config)
    assert svc.state == "Transitioning" and svc.scoring_uri is None
    svc.wait_for_deployment()
    assert svc.state == "Healthy"
    assert svc.get_logs().count("init: k = 7") == 2  # init() once per worker
    assert [svc.run('{"data": [1]}') for _ in range(4)] == [[7]] * 4
    svc.delete()


def test_healthy_with_loopback_scoring_uri(service: AciWebservice) -> None:
    assert service.state == "Healthy"
    assert service.scoring_uri is not None
    assert service.scoring_uri.startswith("http://127.0.0.1:")
    assert service.scoring_uri.endswith("/score")
    assert service.swagger_uri == service.scoring_uri.replace("/score", "/swagger.json")
    assert service.port == int(service.scoring_uri.split(":")[2].split("/")[0])


def test_single_index_body_is_compact_json(service: AciWebservice) -> None:
    resp = httpx.post(
        service.scoring_uri,
        content='{"data": [1]}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 200
    assert resp.text == "[7]"
    assert resp.text[1] == "7"  # the notebook prints resp.text[1]


def test_run_returns_parsed_json(service: AciWebservice) -> None:
    assert service.run(json.dumps({"data": [1, 2, 3]})) == [7, 14, 21]
    assert service.run({"data": [2]}) == [14]  # a non-string is JSON-encoded


def test_malformed_json_is_a_json_500_and_service_keeps_serving(service: AciWebservice) -> None:
    resp = httpx.post(service.scoring_uri, content="{not json")
    assert resp.status_code == 500
    assert resp.json()["error"].startswith("JSONDecodeError")
    with pytest.raises(WebserviceException, match="Response Code: 500") as info:
        service.run("{not json")
    assert info.value.details["status_code"] == 500
    assert "JSONDecodeError" in info.value.details["content"]
    assert service.run('{"data": [1]}') == [7]


@pytest.mark.parametrize("body", ['{"data": "x"}', '{"data": [1.5]}', '{"nodata": 1}', "[1]"])
def test_wrong_shapes_are_500_with_the_error(service: AciWebservice, body: str) -> None:
    resp = httpx.post(service.scoring_uri, content=body)
    assert resp.status_code == 500
    assert set(resp.json()) == {"error"}
    assert service.run('{"data": [3]}') == [21]


def test_run_raising_is_500_and_traceback_in_logs(service: AciWebservice) -> None:
    with pytest.raises(WebserviceException) as info:
        service.run('{"data": "boom"}')
    assert info.value.details["status_code"] == 500
    assert "RuntimeError: run() failed on purpose" in info.value.details["content"]
    logs = service.get_logs()
    assert "run() failed on purpose" in logs and "Traceback" in logs
    assert service.run('{"data": [1]}') == [7]


def test_oversized_body_is_413(service: AciWebservice) -> None:
    body = json.dumps({"data": list(range(2000))})
    assert len(body) > SMALL_LIMIT
    resp = httpx.post(service.scoring_uri, content=body)
    assert resp.status_code == 413
    with pytest.raises(WebserviceException, match="Response Code: 413"):
        service.run(body)


def test_logs_hold_init_output_and_access_lines(service: AciWebservice) -> None:
    service.run('{"data": [1]}')
    logs = service.get_logs()
    assert "init: k = 7" in logs
    assert "POST /score 200" in logs
    assert service.get_logs(num_lines=2).count("\n") == 2


def test_lookup_list_and_workspace_view(ws: Workspace, service: AciWebservice) -> None:
    found = Webservice(ws, "score-svc")
    assert type(found) is AciWebservice and found == service
    assert AciWebservice(ws, "score-svc").scoring_uri == service.scoring_uri
    assert "score-svc" in ws.webservices
    assert ws.webservices["score-svc"].scoring_uri == service.scoring_uri
    names = [s.name for s in Webservice.list(ws, compute_type="ACI", model_name="k-model")]
    assert "score-svc" in names
    assert Webservice.list(ws, tags=[["name", "k"]])[0].name == "score-svc"
    assert Webservice.list(ws, tags=[["name", "other"]]) == []
    assert Webservice.list(ws, model_id="k-model:99") == []


def test_missing_service_raises(ws: Workspace) -> None:
    with pytest.raises(WebserviceException, match="not found"):
        Webservice(ws, "no-such-svc")


def test_service_of_other_type_raises(ws: Workspace, service: AciWebservice) -> None:
    with pytest.raises(WebserviceException, match="not Local"):
        LocalWebservice(ws, "score-svc")


def test_serialize_and_attributes(service: AciWebservice, model7: Model) -> None:
    data = service.serialize()
    assert data["state"] == "Healthy" and data["computeType"] == "ACI"
    assert data["models"] == [model7.id] and data["tags"] == {"name": "k", "framework": "none"}
    assert data["description"] == "multiplies by k"
    assert data["resourceLimits"]["memoryInGB"] == 1
    assert [m.id for m in service.models] == [model7.id]
    assert service.cpu_cores == 1 and service.memory_gb == 1
    assert not service.auth_enabled
    with pytest.raises(WebserviceException, match="does not have key auth"):
        service.get_keys()


def test_models_are_materialised_in_v1_layout(ws: Workspace, service: AciWebservice) -> None:
    gen = Path(ws.path) / "services" / "score-svc" / str(service.serialize()["generation"])
    assert (gen / "trainyard-models" / "k-model" / "1" / "k.txt").read_text() == "7"
    assert (gen / "app" / "helper.py").is_file()


@pytest.mark.parametrize(
    "name", ["ab", "Upper-case", "1starts-with-digit", "ends-", "a" * 33, "x_y"]
)
def test_invalid_service_names(
    ws: Workspace, model7: Model, inference: InferenceConfig, name: str
) -> None:
    with pytest.raises(WebserviceException, match="service name is invalid"):
        Model.deploy(ws, name, [model7], inference)


def test_deploy_validates_before_storing(
    ws: Workspace, model7: Model, inference: InferenceConfig
) -> None:
    with pytest.raises(WebserviceException, match="inference_config is required"):
        Model.deploy(ws, "bad-svc", [model7])
    with pytest.raises(WebserviceException, match="models must hold Model objects"):
        Model.deploy(ws, "bad-svc", ["k-model:1"], inference)  # type: ignore[list-item]
    with pytest.raises(WebserviceException, match="deployment_target"):
        Model.deploy(ws, "bad-svc", [model7], inference, deployment_target=object())
    with pytest.raises(WebserviceException, match="deployment_config must come from"):
        Model.deploy(ws, "bad-svc", [model7], inference, deployment_config={"cpu": 1})
    assert "bad-svc" not in ws.webservices


def test_name_clash_overwrite_and_double_delete(
    ws: Workspace, model7: Model, inference: InferenceConfig, tmp_path: Path
) -> None:
    first = Model.deploy(
        ws, "clash-svc", [model7], inference, LocalWebservice.deploy_configuration()
    )
    with pytest.raises(WebserviceException, match="already exists"):
        Model.deploy(ws, "clash-svc", [model7], inference, LocalWebservice.deploy_configuration())
    first.wait_for_deployment()
    old_uri = first.scoring_uri
    model3 = register_k(ws, tmp_path, 3)
    second = Model.deploy(
        ws, "clash-svc", [model3], inference, AciWebservice.deploy_configuration(), overwrite=True
    )
    second.wait_for_deployment()
    assert type(second) is AciWebservice
    assert second.run('{"data": [1]}') == [3]
    assert old_uri is not None
    with pytest.raises(httpx.ConnectError):
        httpx.post(old_uri, content='{"data": [1]}')
    second.delete()
    assert "clash-svc" not in ws.webservices
    assert not (Path(ws.path) / "services" / "clash-svc").exists()
    with pytest.raises(WebserviceException, match="may already have been deleted"):
        second.delete()
    with pytest.raises(httpx.ConnectError):
        httpx.post(second.scoring_uri or "", content='{"data": [1]}')
