"""A deployed service's exposure and limits come from its deployment configuration (issue 11,
item 6): key auth on by default for ACI-style services, ``run()`` and body timeouts, accepted Host
names, and a service log the server rotates by size that ``get_logs()`` still reads whole.

Real services on this interpreter, called over raw HTTP with httpx.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from trainyard._serving.auth import hash_key
from trainyard.core import Workspace
from trainyard.core.inference_config import InferenceConfig
from trainyard.core.model import Model
from trainyard.core.webservice import AciWebservice, LocalWebservice, ServerOptions
from trainyard.core.webservice._manager import ServicePaths

from .conftest import current_interpreter, write_app

pytestmark = pytest.mark.reliability

SLOW_PY = """
    import json, time

    def init():
        print("init: slow app", flush=True)

    def run(raw):
        data = json.loads(raw)
        time.sleep(float(data.get("sleep", 0)))
        print("scored " + "x" * 200, flush=True)
        return {"ok": True}
"""


@pytest.fixture(scope="module")
def slow_inference(tmp_path_factory: pytest.TempPathFactory) -> InferenceConfig:
    app = write_app(tmp_path_factory.mktemp("slowapp"), {"score.py": SLOW_PY})
    return InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )


def test_aci_service_requires_a_key_by_default(
    ws: Workspace, model7: Model, slow_inference: InferenceConfig
) -> None:
    svc = Model.deploy(
        ws, "default-auth", [model7], slow_inference, AciWebservice.deploy_configuration()
    )
    svc.wait_for_deployment()
    assert svc.auth_enabled
    uri = svc.scoring_uri
    assert uri is not None
    body = json.dumps({"sleep": 0})
    assert httpx.post(uri, content=body).status_code == 401
    key, _ = svc.get_keys()
    ok = httpx.post(uri, content=body, headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    assert svc.run(body) == {"ok": True}  # the SDK sends the key itself
    svc.delete()


def test_server_options_reach_the_deployed_server(
    ws: Workspace, model7: Model, slow_inference: InferenceConfig
) -> None:
    opts = ServerOptions(
        run_timeout_seconds=1,
        allowed_hosts=["scoring.example.test"],
        log_max_bytes=4096,
        log_backups=2,
    )
    cfg = LocalWebservice.deploy_configuration(server_options=opts)
    svc = Model.deploy(ws, "opts-svc", [model7], slow_inference, cfg)
    svc.wait_for_deployment()
    uri = svc.scoring_uri
    assert uri is not None
    # A Host the configuration accepts is served; any other name is refused (DNS rebinding).
    named = httpx.post(uri, content='{"sleep": 0}', headers={"Host": "scoring.example.test"})
    assert named.status_code == 200
    other = httpx.post(uri, content='{"sleep": 0}', headers={"Host": "rebind.attacker.test"})
    assert other.status_code == 403
    # run() past run_timeout_seconds is a typed 504, not a hung client.
    slow = httpx.post(uri, content='{"sleep": 4}', timeout=30)
    assert slow.status_code == 504
    # Enough output to rotate the 4 KiB log several times: old files kept, newest read first.
    time.sleep(3.5)  # the timed-out run() finishes; the worker is free again
    for _ in range(60):
        assert httpx.post(uri, content='{"sleep": 0}').status_code == 200
    log = ServicePaths(ws.path, "opts-svc").generations()[-1].log
    rotated = log.with_name(log.name + ".1")
    assert rotated.exists() and log.stat().st_size <= 4096
    assert not log.with_name(log.name + ".3").exists()  # log_backups=2
    tail = svc.get_logs(num_lines=100)
    assert tail.count("scored x") >= 30  # lines from the current file and the rotated one
    svc.delete()


def test_packaged_image_carries_key_auth(
    ws: Workspace, model7: Model, slow_inference: InferenceConfig, tmp_path: Path
) -> None:
    package = Model.package(
        ws, [model7], slow_inference, generate_dockerfile=True, image_name="keyed"
    )
    folder = Path(package.location)
    dockerfile = (folder / "Dockerfile").read_text()
    assert "KEYS_FILE=/var/trainyard/package/keys.json" in dockerfile
    assert "keys.secret.json" in (folder / ".dockerignore").read_text().split()
    secret = folder / "keys.secret.json"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    primary, secondary = package.get_keys()
    hashes = json.loads((folder / "keys.json").read_text())
    assert primary not in json.dumps(hashes) and hash_key(primary) in json.dumps(hashes)
    # The package's own run.sh with the image's KEYS_FILE: a call without the key is refused.
    env = {
        **os.environ,
        "TRAINYARD_PYTHON": sys.executable,
        "KEYS_FILE": str(folder / "keys.json"),
        "PORT": "0",
    }
    log = tmp_path / "pkg.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(folder / "run.sh")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "listening on http://127.0.0.1:" in text:
                port = int(text.split("listening on http://127.0.0.1:")[1].split()[0].strip("/"))
            elif proc.poll() is not None:
                pytest.fail(f"run.sh exited {proc.returncode}:\n{text}")
            else:
                time.sleep(0.2)
        assert port is not None, log.read_text()
        uri = f"http://127.0.0.1:{port}/score"
        assert httpx.post(uri, content='{"sleep": 0}').status_code == 401
        good = httpx.post(
            uri, content='{"sleep": 0}', headers={"Authorization": f"Bearer {secondary}"}
        )
        assert good.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_package_without_a_dockerfile_has_no_keys(
    ws: Workspace, model7: Model, slow_inference: InferenceConfig, tmp_path: Path
) -> None:
    package = Model.package(ws, [model7], slow_inference, image_name="plain")
    from trainyard.exceptions import WebserviceException

    with pytest.raises(WebserviceException, match="generate_dockerfile=True"):
        package.get_keys()
