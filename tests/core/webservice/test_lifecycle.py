"""Service processes: init failure, a killed process, restart, update without dropped requests,
ports, and deleting while a deployment runs."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from trainyard._execution.processes import ProcessId
from trainyard.core import Workspace
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.webservice import AciWebservice, LocalWebservice, Webservice
from trainyard.exceptions import WebserviceException

from .conftest import FAILING_PY, current_interpreter, register_k, write_app


def _server(service: Webservice) -> ProcessId:
    ident = ProcessId.from_dict(service.serialize()["server"])
    assert ident is not None
    return ident


def test_init_failure_is_failed_with_traceback_in_logs(
    ws: Workspace, model7: Model, tmp_path: Path
) -> None:
    app = write_app(tmp_path / "failing", {"score.py": FAILING_PY})
    cfg = InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )
    svc = Model.deploy(ws, "failing-svc", [model7], cfg)
    with pytest.raises(
        WebserviceException, match=r"non-successful terminal state(.|\n)*Failed"
    ) as info:
        svc.wait_for_deployment()
    assert "marker-7f3a" in info.value.message  # the log tail is in the message
    assert svc.state == "Failed"
    assert svc.error is not None and "init() raised" in svc.error["message"]
    logs = svc.get_logs()
    assert "Traceback (most recent call last)" in logs
    assert "RuntimeError: cannot load the model: marker-7f3a" in logs
    assert svc.scoring_uri is None
    svc.delete()


def test_a_failed_deployment_is_retried_in_place_or_by_overwrite(
    ws: Workspace, model7: Model, inference: InferenceConfig, tmp_path: Path
) -> None:
    broken = InferenceConfig(
        entry_script="score.py",
        source_directory=str(write_app(tmp_path / "failing", {"score.py": FAILING_PY})),
        environment=current_interpreter(),
    )
    svc = Model.deploy(ws, "retry-svc", [model7], broken)
    with pytest.raises(WebserviceException, match=r"overwrite=True") as info:
        svc.wait_for_deployment()
    assert "update(inference_config=" in info.value.message
    # Deploying the fixed app under the same name says how, naming the failure.
    with pytest.raises(
        WebserviceException, match=r"is Failed \(The entry script failed.*init\(\) raised"
    ) as info:
        Model.deploy(ws, "retry-svc", [model7], inference)
    assert "overwrite=True" in info.value.message
    # In place: update() redeploys the failed service.
    svc.update(inference_config=inference)
    svc.wait_for_deployment()
    assert svc.state == "Healthy" and svc.run('{"data": [1]}') == [7]
    # By overwrite: a failed service is replaced without deleting it by hand.
    svc.update(inference_config=broken)
    with pytest.raises(WebserviceException):
        svc.wait_for_deployment()
    again = Model.deploy(ws, "retry-svc", [model7], inference, overwrite=True)
    again.wait_for_deployment()
    assert again.run('{"data": [2]}') == [14]
    again.delete()


def test_killed_process_is_unhealthy_and_restart_brings_it_back(
    ws: Workspace, model7: Model, inference: InferenceConfig
) -> None:
    svc = Model.deploy(ws, "kill-svc", [model7], inference, AciWebservice.deploy_configuration())
    svc.wait_for_deployment()
    port = svc.port
    os.kill(_server(svc).pid, signal.SIGKILL)
    assert _wait_for(lambda: not _server(svc).alive())
    svc.reload()
    assert svc.state == "Unhealthy"
    assert Webservice(ws, "kill-svc")._state == "Unhealthy"  # recorded, not only computed
    with pytest.raises(WebserviceException, match="Cannot reach service"):
        svc.run('{"data": [1]}')
    svc.restart()
    assert svc.state == "Healthy"
    assert svc.port == port  # the previous port was free again
    assert svc.run('{"data": [1]}') == [7]
    svc.delete()


def test_update_serves_the_new_model_without_dropping_requests(
    ws: Workspace, model7: Model, inference: InferenceConfig, tmp_path: Path
) -> None:
    svc = Model.deploy(ws, "update-svc", [model7], inference, AciWebservice.deploy_configuration())
    svc.wait_for_deployment()
    old_server = _server(svc)
    model9 = register_k(ws, tmp_path, 9)
    results: list[object] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def score() -> None:
        client = Webservice(ws, "update-svc")  # its own object: learns about the move by itself
        while not stop.is_set():
            try:
                results.append(client.run('{"data": [1]}'))
            except BaseException as err:
                errors.append(err)
                return

    thread = threading.Thread(target=score)
    thread.start()
    try:
        assert _wait_for(lambda: len(results) > 20)
        svc.update(models=[model9])
        assert svc._state == "Transitioning"
        svc.wait_for_deployment()
        # keep scoring until the old generation has been stopped
        assert _wait_for(lambda: not old_server.alive(), timeout=30)
        count = len(results)
        assert _wait_for(lambda: len(results) > count + 20)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    assert results[0] == [7] and results[-1] == [9]
    assert set(map(tuple, results)) == {(7,), (9,)}  # type: ignore[arg-type]
    assert svc.run('{"data": [2]}') == [18]
    assert [m.id for m in svc.models] == [model9.id]
    svc.delete()


def test_failed_update_keeps_the_old_generation_serving(
    ws: Workspace, model7: Model, inference: InferenceConfig, tmp_path: Path
) -> None:
    svc = Model.deploy(ws, "badupdate-svc", [model7], inference)
    svc.wait_for_deployment()
    uri = svc.scoring_uri
    app = write_app(tmp_path / "failing", {"score.py": FAILING_PY})
    broken = InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )
    svc.update(inference_config=broken)
    with pytest.raises(WebserviceException, match="Operation: Update Failed"):
        svc.wait_for_deployment()
    assert svc.state == "Healthy" and svc.scoring_uri == uri
    assert svc.run('{"data": [1]}') == [7]
    svc.delete()


def test_metadata_update_needs_no_new_process(
    ws: Workspace, model7: Model, inference: InferenceConfig
) -> None:
    svc = Model.deploy(ws, "meta-svc", [model7], inference)
    svc.wait_for_deployment()
    server = _server(svc)
    svc.update(tags={"stage": "prod"}, description="now tagged", properties={"owner": "me"})
    assert svc._state == "Healthy" and svc.tags == {"stage": "prod"}
    assert svc.description == "now tagged" and svc.properties == {"owner": "me"}
    assert _server(svc) == server
    with pytest.raises(WebserviceException, match="cannot be changed"):
        svc.update(properties={"owner": "you"})
    svc.delete()


def test_local_service_on_a_fixed_port_and_a_port_in_use(
    ws: Workspace, model7: Model, inference: InferenceConfig
) -> None:
    port = _free_port()
    svc = Model.deploy(
        ws, "fixed-svc", [model7], inference, LocalWebservice.deploy_configuration(port)
    )
    svc.wait_for_deployment()
    assert isinstance(svc, LocalWebservice)
    assert svc.scoring_uri == f"http://127.0.0.1:{port}/score"
    assert httpx.post(svc.scoring_uri, content='{"data": [1]}').text == "[7]"
    clash = Model.deploy(
        ws, "clashport-svc", [model7], inference, LocalWebservice.deploy_configuration(port)
    )
    with pytest.raises(WebserviceException, match="could not listen"):
        clash.wait_for_deployment()
    assert clash.state == "Failed"
    assert f"cannot listen on 127.0.0.1:{port}" in (clash.error or {}).get("message", "")
    assert svc.run('{"data": [1]}') == [7]  # the first one is untouched
    clash.delete()
    svc.delete()


def test_delete_during_deployment_stops_everything(
    ws: Workspace, model7: Model, tmp_path: Path
) -> None:
    app = write_app(
        tmp_path / "slow",
        {"score.py": "import time\ndef init():\n    time.sleep(60)\ndef run(d):\n    return d\n"},
    )
    cfg = InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )
    svc = Model.deploy(ws, "slow-svc", [model7], cfg)
    gen = Path(ws.path) / "services" / "slow-svc" / "1"
    assert _wait_for(lambda: (gen / "server.pid").exists(), timeout=60)
    server = ProcessId.from_dict(__import__("json").loads((gen / "server.pid").read_text()))
    assert server is not None and server.alive()
    svc.delete()
    assert not server.alive()
    assert not gen.exists()
    assert "slow-svc" not in ws.webservices


def test_vanished_deployer_fails_the_deployment(
    ws: Workspace, model7: Model, tmp_path: Path
) -> None:
    app = write_app(
        tmp_path / "slow2",
        {"score.py": "import time\ndef init():\n    time.sleep(60)\ndef run(d):\n    return d\n"},
    )
    cfg = InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )
    svc = Model.deploy(ws, "orphan-svc", [model7], cfg)
    deployer = ProcessId.from_dict(svc._data["operation"]["deployer"])
    assert deployer is not None
    os.kill(deployer.pid, signal.SIGKILL)
    with pytest.raises(WebserviceException, match="deployment process exited"):
        svc.wait_for_deployment(timeout_sec=60)
    assert svc.state == "Failed"
    svc.delete()


def test_wait_for_deployment_timeout(ws: Workspace, model7: Model, tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "slow3",
        {"score.py": "import time\ndef init():\n    time.sleep(60)\ndef run(d):\n    return d\n"},
    )
    cfg = InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )
    svc = Model.deploy(ws, "timeout-svc", [model7], cfg)
    with pytest.raises(WebserviceException, match="still Transitioning"):
        svc.wait_for_deployment(timeout_sec=0.5)
    with pytest.raises(WebserviceException, match="Transitioning"):
        svc.update(models=[model7])
    svc.delete()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(predicate: object, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
