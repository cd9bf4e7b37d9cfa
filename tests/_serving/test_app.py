"""End-to-end tests of the scoring app: the real server in a subprocess, called over HTTP."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from trainyard._serving.auth import generate_key, write_keys_file

from .conftest import ServerProcess, StartServer, write_app

ECHO_SCORE = """
    import json
    import os

    from textutils import shout  # a helper module next to the entry script

    MODEL = None


    def init():
        global MODEL
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.txt")) as fh:
            MODEL = fh.read().strip()
        print("init done, model", MODEL)


    def run(raw_data):
        data = json.loads(raw_data)  # malformed JSON raises here -> 500
        kind = data.get("kind")
        if kind == "fail":
            raise ValueError("bad input: " + str(data["data"]))
        if kind == "str":
            return "seven"
        if kind == "type":
            return type(raw_data).__name__
        if kind == "len":
            return len(raw_data)
        if kind == "shout":
            return shout(data["data"])
        if kind == "env":
            return {
                "trainyard": os.environ.get("TRAINYARD_MODEL_DIR"),
                "azureml": os.environ.get("AZUREML_MODEL_DIR"),
                "model": MODEL,
                "cwd": os.getcwd(),
            }
        if kind == "unserialisable":
            return object()
        return data["data"]
"""

TEXTUTILS = """
    def shout(text):
        return text.upper() + "!"
"""

MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def echo_app(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("echo")
    app = write_app(root / "app", {"score.py": ECHO_SCORE, "textutils.py": TEXTUTILS})
    model_dir = root / "trainyard-models" / "mnist" / "1"
    model_dir.mkdir(parents=True)
    (model_dir / "model.txt").write_text("mlp-v1\n")
    return {"app": app, "model_dir": model_dir}


@pytest.fixture(scope="module")
def echo_server(module_servers: StartServer, echo_app: dict[str, Path]) -> ServerProcess:
    server = module_servers(
        "--entry-script",
        "score.py",
        "--source-directory",
        echo_app["app"],
        "--model-dir",
        echo_app["model_dir"],
        "--max-request-bytes",
        str(MAX_BYTES),
        "--service-name",
        "echo-svc",
        name="echo",
    )
    server.wait_ready()
    return server


@pytest.fixture
def client(echo_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=echo_server.url, timeout=30) as c:
        yield c


def score(client: httpx.Client, payload: object, **headers: str) -> httpx.Response:
    return client.post(
        "/score",
        content=json.dumps(payload),
        headers={"Content-Type": "application/json", **headers},
    )


# --- scoring contract -------------------------------------------------------------------------------


def test_score_returns_compact_json_of_run_result(client: httpx.Client) -> None:
    resp = score(client, {"data": [7]})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.text == "[7]"
    assert resp.text[1] == "7"  # quirk 6: the notebook prints resp.text[1]
    assert score(client, {"data": {"a": [1, 2], "b": None}}).text == '{"a":[1,2],"b":null}'


def test_run_receives_the_raw_body_as_str(client: httpx.Client) -> None:
    assert score(client, {"kind": "type"}).json() == "str"
    raw = '{"kind":  "len" ,  "pad": "é"}'
    resp = client.post("/score", content=raw.encode("utf-8"))
    assert resp.json() == len(raw)


def test_str_result_is_sent_as_a_json_string(client: httpx.Client) -> None:
    resp = score(client, {"kind": "str"})
    assert resp.text == '"seven"'
    assert resp.json() == "seven"


def test_helper_module_from_source_directory_imports(client: httpx.Client) -> None:
    assert score(client, {"kind": "shout", "data": "hi"}).json() == "HI!"


def test_model_dir_variables_and_cwd(client: httpx.Client, echo_app: dict[str, Path]) -> None:
    env = score(client, {"kind": "env"}).json()
    assert env["trainyard"] == str(echo_app["model_dir"])
    assert env["azureml"] == str(echo_app["model_dir"])
    assert env["model"] == "mlp-v1"  # init() read the model through AZUREML_MODEL_DIR
    assert Path(env["cwd"]).resolve() == echo_app["app"].resolve()


def test_run_exception_gives_500_json_and_service_keeps_serving(
    client: httpx.Client, echo_server: ServerProcess
) -> None:
    resp = score(client, {"kind": "fail", "data": 42})
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": "ValueError: bad input: 42"}

    malformed = client.post("/score", content=b'{"data": [1,')
    assert malformed.status_code == 500
    assert malformed.json()["error"].startswith("JSONDecodeError: ")

    assert score(client, {"data": [3]}).text == "[3]"
    deadline = time.monotonic() + 10
    while "bad input: 42" not in echo_server.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    log = echo_server.stderr
    assert "Traceback (most recent call last)" in log
    assert 'raise ValueError("bad input: " + str(data["data"]))' in log
    assert "ValueError: bad input: 42" in log


def test_unserialisable_result_is_a_500(client: httpx.Client) -> None:
    resp = score(client, {"kind": "unserialisable"})
    assert resp.status_code == 500
    assert resp.json() == {"error": "TypeError: Object of type object is not JSON serializable"}


def test_body_over_limit_is_413_and_connection_stays_usable(client: httpx.Client) -> None:
    at_limit = b" " * (MAX_BYTES - len(b'{"data":1}')) + b'{"data":1}'
    assert client.post("/score", content=at_limit).text == "1"

    too_big = b'{"data": 1}' + b" " * MAX_BYTES
    resp = client.post("/score", content=too_big)
    assert resp.status_code == 413
    assert resp.json() == {"error": f"Request body exceeds {MAX_BYTES} bytes"}
    assert score(client, {"data": [1]}).text == "[1]"


def test_streamed_body_without_length_is_cut_off_at_limit(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):  # 200 x 8 KiB = 1.6 MiB, far over the 64 KiB limit
            yield b" " * 8192

    resp = client.post("/score", content=chunks())
    assert resp.status_code == 413
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert score(client, {"data": [2]}).text == "[2]"


def test_non_utf8_body_is_400(client: httpx.Client) -> None:
    resp = client.post("/score", content=b'{"data": "\xff\xfe"}')
    assert resp.status_code == 400
    assert resp.json() == {"error": "Request body is not valid UTF-8"}


def test_liveness_readiness_after_init(client: httpx.Client) -> None:
    live = client.get("/")
    assert (live.status_code, live.text) == (200, "Healthy")
    assert client.get("/ready").status_code == 200
    assert client.head("/").status_code == 200
    assert client.head("/ready").status_code == 200


def test_openapi_document_served_and_docs_off(
    client: httpx.Client, echo_server: ServerProcess
) -> None:
    doc = client.get("/swagger.json")
    assert doc.status_code == 200
    spec = doc.json()
    assert spec["info"]["title"] == "echo-svc"
    assert "post" in spec["paths"]["/score"]
    assert "requestBody" in spec["paths"]["/score"]["post"]
    assert set(spec["paths"]) >= {"/", "/ready", "/score"}
    assert client.get("/docs").status_code == 404
    assert "Duplicate Operation ID" not in echo_server.stderr


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.get("/score").status_code == 405


def test_access_line_per_request(client: httpx.Client, echo_server: ServerProcess) -> None:
    score(client, {"data": ["access-line-marker"]})
    client.get("/ready")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = echo_server.stdout.splitlines()
        if any(" GET /ready 200 " in line for line in lines):
            break
        time.sleep(0.05)
    score_lines = [line for line in lines if " POST /score 200 " in line]
    assert score_lines, echo_server.stdout
    assert score_lines[-1].endswith("ms")
    assert any(line.startswith("init done, model mlp-v1") for line in lines)  # user prints are kept


# --- start-up ---------------------------------------------------------------------------------------

SLOW_INIT = """
    import time

    def init():
        time.sleep(1)

    def run(raw):
        return "ok"
"""


def test_liveness_is_503_until_init_finishes(start_server: StartServer, tmp_path: Path) -> None:
    app = write_app(tmp_path / "slow", {"score.py": SLOW_INIT})
    server = start_server("--entry-script", app / "score.py")
    url = server.wait_listening()
    seen: list[tuple[int, int, int]] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                live = c.get("/")
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            ready = c.get("/ready").status_code
            scored = c.post("/score", content=b"{}").status_code
            seen.append((live.status_code, ready, scored))
            if live.status_code == 200:
                assert live.text == "Healthy"
                break
            time.sleep(0.05)
    assert seen[0] == (503, 503, 503)
    assert seen[-1] == (200, 200, 200)
    assert server.proc.poll() is None


def test_async_run_is_awaited(start_server: StartServer, tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "asyncapp",
        {
            "score.py": """
                import asyncio, json

                def init():
                    pass

                async def run(raw):
                    await asyncio.sleep(0)
                    return {"echo": json.loads(raw)}
            """
        },
    )
    server = start_server("--entry-script", app / "score.py")
    url = server.wait_ready()
    assert httpx.post(f"{url}/score", content=b"[1]").text == '{"echo":[1]}'


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            'def init():\n    raise RuntimeError("cannot load model")\n\ndef run(x):\n    return x\n',
            ['raise RuntimeError("cannot load model")', "RuntimeError: cannot load model"],
        ),
        (
            "import not_a_real_module_xyz\n\ndef init():\n    pass\n\ndef run(x):\n    return x\n",
            ["import not_a_real_module_xyz", "ModuleNotFoundError"],
        ),
        ("def run(x):\n    return x\n", ["defines no init()"]),
    ],
    ids=["init-raises", "import-fails", "no-init"],
)
def test_startup_failure_exits_3_with_traceback_on_stderr(
    start_server: StartServer, tmp_path: Path, source: str, expected: list[str]
) -> None:
    app = write_app(tmp_path / "bad", {"score.py": source})
    server = start_server("--entry-script", app / "score.py")
    assert server.wait_exit() == 3
    for text in expected:
        assert text in server.stderr


# --- several workers ---------------------------------------------------------------------------------

PID_SCORE = """
    import os
    import sys

    def init():
        # one write: print() writes its pieces separately, and two workers share stdout
        sys.stdout.write(f"worker {os.getpid()} initialised\\n")
        sys.stdout.flush()

    def run(raw):
        return os.getpid()
"""


def test_two_workers_each_run_init_and_serve(start_server: StartServer, tmp_path: Path) -> None:
    app = write_app(tmp_path / "pids", {"score.py": PID_SCORE})
    server = start_server("--entry-script", "score.py", "--source-directory", app, "--workers", "2")
    url = server.wait_ready()
    deadline = time.monotonic() + 60
    while server.stdout.count("initialised") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stdout.count("initialised") == 2
    pids = {int(pid) for pid in re.findall(r"worker (\d+) initialised", server.stdout)}
    assert len(pids) == 2
    assert httpx.post(f"{url}/score", content=b"{}").json() in pids
    assert server.stop() == 0


def test_two_workers_init_failure_exits_3(start_server: StartServer, tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "bad2",
        {
            "score.py": 'def init():\n    raise OSError("no model file")\n\ndef run(x):\n    return x\n'
        },
    )
    server = start_server("--entry-script", app / "score.py", "--workers", "2")
    assert server.wait_exit() == 3
    assert "OSError: no model file" in server.stderr


def test_sigterm_stops_single_worker_with_0(start_server: StartServer, tmp_path: Path) -> None:
    app = write_app(tmp_path / "ok", {"score.py": PID_SCORE})
    server = start_server("--entry-script", app / "score.py")
    server.wait_ready()
    assert server.stop() == 0


# --- auth --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {"primary": generate_key(), "secondary": generate_key(), "new": generate_key()}


@pytest.fixture(scope="module")
def auth_server(
    module_servers: StartServer,
    tmp_path_factory: pytest.TempPathFactory,
    echo_app: dict[str, Path],
    keys: dict[str, str],
) -> ServerProcess:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.json"
    write_keys_file(keys_file, [keys["primary"], keys["secondary"]])
    server = module_servers(
        "--entry-script",
        "score.py",
        "--source-directory",
        echo_app["app"],
        "--model-dir",
        echo_app["model_dir"],
        "--keys-file",
        keys_file,
        name="auth",
    )
    server.wait_ready()
    server.keys_file = keys_file  # type: ignore[attr-defined]
    return server


def _assert_unauthorised(resp: httpx.Response) -> None:
    assert resp.status_code == 401
    assert resp.content == b'{"error":"Unauthorized"}'


def test_auth_keys_never_reach_argv_or_disk_in_clear(
    auth_server: ServerProcess, keys: dict[str, str]
) -> None:
    on_disk = auth_server.keys_file.read_text()  # type: ignore[attr-defined]
    assert keys["primary"] not in on_disk and keys["secondary"] not in on_disk
    assert all(keys["primary"] not in str(arg) for arg in auth_server.proc.args)


def test_auth_missing_or_wrong_key_is_401_without_detail(
    auth_server: ServerProcess, keys: dict[str, str]
) -> None:
    url = auth_server.url
    body = b'{"data": [1]}'
    _assert_unauthorised(httpx.post(f"{url}/score", content=body))
    wrong = generate_key()
    _assert_unauthorised(
        httpx.post(f"{url}/score", content=body, headers={"Authorization": f"Bearer {wrong}"})
    )
    _assert_unauthorised(
        httpx.post(f"{url}/score", content=body, headers={"Authorization": keys["primary"]})
    )
    _assert_unauthorised(
        httpx.post(
            f"{url}/score", content=body, headers={"Authorization": f"Basic {keys['primary']}"}
        )
    )
    _assert_unauthorised(
        httpx.post(
            f"{url}/score",
            content=body,
            headers={"Authorization": f"Bearer {keys['primary'][:-1]}"},
        )
    )


def test_auth_primary_and_secondary_both_work(
    auth_server: ServerProcess, keys: dict[str, str]
) -> None:
    for name in ("primary", "secondary"):
        resp = httpx.post(
            f"{auth_server.url}/score",
            content=b'{"data": [7]}',
            headers={"Authorization": f"Bearer {keys[name]}"},
        )
        assert (resp.status_code, resp.text) == (200, "[7]")


def test_auth_probes_are_public_everything_else_needs_a_key(
    auth_server: ServerProcess, keys: dict[str, str]
) -> None:
    url = auth_server.url
    assert httpx.get(f"{url}/").status_code == 200
    assert httpx.get(f"{url}/ready").status_code == 200
    assert httpx.head(f"{url}/").status_code == 200
    _assert_unauthorised(httpx.get(f"{url}/swagger.json"))
    _assert_unauthorised(httpx.get(f"{url}/anything"))
    _assert_unauthorised(httpx.post(f"{url}/", content=b"x"))
    auth = {"Authorization": f"Bearer {keys['secondary']}"}
    assert httpx.get(f"{url}/swagger.json", headers=auth).status_code == 200


def test_auth_key_rotation_through_keys_file(
    auth_server: ServerProcess, keys: dict[str, str]
) -> None:
    """Regenerating the primary key: the old one stops working, the secondary keeps working."""
    write_keys_file(auth_server.keys_file, [keys["new"], keys["secondary"]])  # type: ignore[attr-defined]

    def status(key: str) -> int:
        return httpx.post(
            f"{auth_server.url}/score",
            content=b'{"data": 1}',
            headers={"Authorization": f"Bearer {key}"},
        ).status_code

    deadline = time.monotonic() + 30
    while status(keys["new"]) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status(keys["new"]) == 200
    assert status(keys["primary"]) == 401
    assert status(keys["secondary"]) == 200


# --- in-process: the app object itself ---------------------------------------------------------------


def test_create_app_in_process_gate_and_route_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /score through the gate's fast path and through the documented route give one answer."""
    import asyncio
    import sys

    from trainyard._serving.app import create_app
    from trainyard._serving.config import ServingConfig
    from trainyard._serving.gate import GateMiddleware
    from trainyard._serving.state import initialise

    monkeypatch.setattr(sys, "path", list(sys.path))
    app_dir = write_app(
        tmp_path / "inproc",
        {
            "inproc_score.py": "import json\n\ndef init():\n    pass\n\ndef run(d):\n    return json.loads(d)\n"
        },
    )
    config = ServingConfig(entry_script=app_dir / "inproc_score.py", max_request_bytes=100)
    failures: list[str] = []
    app = create_app(config, on_init_failure=failures.append)
    # A second app whose gate leaves POST /score to the FastAPI route.
    routed = create_app(config, on_init_failure=failures.append)
    (gate,) = [m for m in routed.user_middleware if m.cls is GateMiddleware]
    gate.kwargs["scorer"] = None

    async def call(target: object, body: bytes) -> tuple[int, bytes]:
        transport = httpx.ASGITransport(app=target)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            resp = await c.post("/score", content=body)
            return resp.status_code, resp.content

    assert asyncio.run(call(app, b"[1]"))[0] == 503  # lifespan not run: still initialising
    assert asyncio.run(call(routed, b"[1]"))[0] == 503
    initialise(config, app.state.service, failures.append)
    initialise(config, routed.state.service, failures.append)
    assert failures == []
    for body in (b'{"a": [1, 2]}', b"not json", b"x" * 101, b"\xff"):
        assert asyncio.run(call(app, body)) == asyncio.run(call(routed, body))
    assert asyncio.run(call(app, b'{"a": [1, 2]}')) == (200, b'{"a":[1,2]}')
    sys.modules.pop("inproc_score", None)


def test_init_failure_hook_receives_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from trainyard._serving.app import create_app
    from trainyard._serving.config import ServingConfig
    from trainyard._serving.state import FAILED, initialise

    monkeypatch.setattr(sys, "path", list(sys.path))
    app_dir = write_app(
        tmp_path / "inproc_bad",
        {
            "inproc_bad.py": "def init():\n    raise KeyError('weights')\n\ndef run(d):\n    return d\n"
        },
    )
    config = ServingConfig(entry_script=app_dir / "inproc_bad.py")
    failures: list[str] = []
    app = create_app(config, on_init_failure=failures.append)
    initialise(config, app.state.service, failures.append)
    assert app.state.service.phase == FAILED
    assert len(failures) == 1 and "KeyError: 'weights'" in failures[0]
    sys.modules.pop("inproc_bad", None)
