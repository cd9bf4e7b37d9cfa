"""Attacks on a real scoring-server process on loopback (issue 11, item 6).

Each test starts ``python -m trainyard._serving`` and talks raw HTTP/1.1 to it over a socket, so
the bytes on the wire are exactly what a browser or an attacker's client would send. ``run()`` of
the scoring app writes every input it sees to ``calls.txt``: a refused request must never get there.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import START_TIMEOUT_S, StartServer, post, read_response, request

pytestmark = pytest.mark.reliability

_ACCESS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\S+) (\S+) (\d{3}) [\d.]+ms$")


def _json(body: bytes) -> dict[str, str]:
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


# -- DNS rebinding and cross-site requests ------------------------------------------------------
def test_dns_rebinding_request_never_reaches_run(start_server: StartServer) -> None:
    server = start_server()
    port = server.wait_ready()
    # After rebinding, the attacker's page is "same-origin" with its own name, now 127.0.0.1.
    name = f"rebind.attacker.example:{port}"
    for raw in (
        post("/score", b"pwned", "Content-Type: text/plain", f"Origin: http://{name}", host=name),
        post("/score", b"pwned", "Content-Type: text/plain", host=name),
        f"GET / HTTP/1.1\r\nHost: {name}\r\n\r\n".encode(),
        f"GET /swagger.json HTTP/1.1\r\nHost: {name}\r\n\r\n".encode(),
    ):
        status, headers, body = request(port, raw)
        assert status == 403, body
        assert headers["content-type"] == "application/json"
        error = _json(body)
        assert error["code"] == "HOST_NOT_ALLOWED" and "--allowed-host" in error["error"]
    assert server.calls == []
    assert f"refused Host 'rebind.attacker.example:{port}'" in server.output()
    # Loopback names still work, with or without a port.
    for host in ("localhost", f"127.0.0.1:{port}", f"[::1]:{port}", "app.localhost"):
        assert request(port, post("/score", b"ok", host=host))[0] == 200, host
    assert server.calls == ["ok"] * 4


def test_cross_origin_simple_request_is_refused_before_run(start_server: StartServer) -> None:
    server = start_server()
    port = server.wait_ready()
    # A form post or text/plain fetch from any web page: the browser sends it without a preflight.
    for origin in ("http://attacker.example", "null", f"http://localhost:{port + 1}"):
        status, _, body = request(
            port, post("/score", b"pwned", "Content-Type: text/plain", f"Origin: {origin}")
        )
        assert status == 403 and _json(body)["code"] == "ORIGIN_NOT_ALLOWED", origin
    assert server.calls == []
    # The service's own origin (e.g. its /docs page) is same-origin.
    same = post("/score", b"ok", f"Origin: http://localhost:{port}", host=f"localhost:{port}")
    assert request(port, same)[0] == 200 and server.calls == ["ok"]


def test_allowed_hosts_and_origins_are_configurable(start_server: StartServer) -> None:
    server = start_server(
        "--allowed-host", "scoring.test", "--allowed-host", ".corp.test",
        "--allowed-origin", "https://app.corp.test",
    )  # fmt: skip
    port = server.wait_ready()
    assert request(port, post("/score", b"a", host="scoring.test:443"))[0] == 200
    assert request(port, post("/score", b"b", host="x.corp.test"))[0] == 200
    assert request(port, post("/score", b"c", host="corp.test.attacker.example"))[0] == 403
    origin = "Origin: https://app.corp.test"
    preflight = (
        f"OPTIONS /score HTTP/1.1\r\nHost: localhost\r\n{origin}\r\n"
        "Access-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: content-type, authorization\r\n\r\n"
    ).encode()
    status, headers, _ = request(port, preflight)
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.corp.test"
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"]
    status, headers, body = request(
        port, post("/score", b"d", "Content-Type: application/json", origin)
    )
    assert (status, body) == (200, b'"d"')
    assert headers["access-control-allow-origin"] == "https://app.corp.test"
    assert request(port, post("/score", b"e", "Origin: https://corp.test"))[0] == 403
    assert server.calls == ["a", "b", "d"]


def test_allowed_cross_origin_still_needs_the_key(
    start_server: StartServer, tmp_path: Path
) -> None:
    from trainyard._serving.auth import generate_key, write_keys_file

    key = generate_key()
    keys = tmp_path / "keys.json"
    write_keys_file(keys, [key])
    server = start_server("--keys-file", keys, "--allowed-origin", "https://app.test")
    port = server.wait_ready()
    origin = "Origin: https://app.test"
    status, headers, _ = request(port, post("/score", b"x", origin))
    assert status == 401 and headers["access-control-allow-origin"] == "https://app.test"
    assert request(port, post("/score", b"y", origin, f"Authorization: Bearer {key}"))[0] == 200
    assert server.calls == ["y"]


# -- slow clients -------------------------------------------------------------------------------
def test_slow_body_gets_408_and_others_are_served_meanwhile(start_server: StartServer) -> None:
    server = start_server("--body-timeout", "1")
    port = server.wait_ready()
    stalled = []
    for _ in range(20):  # a small slowloris crowd, each promising 1000 bytes and sending 10
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(post("/score", b"x" * 1000)[:-990])
        stalled.append(sock)
    try:
        assert request(port, post("/score", b"meanwhile"))[:3:2] == (200, b'"meanwhile"')
        for sock in stalled:
            status, headers, body = read_response(sock)
            assert status == 408 and _json(body)["code"] == "BODY_TIMEOUT"
            assert headers.get("connection") == "close"
            assert sock.recv(1) == b""  # and the connection is closed
    finally:
        for sock in stalled:
            sock.close()
    assert server.calls == ["meanwhile"]
    assert "the body did not arrive within 1s" in server.output()


def test_slow_or_missing_headers_close_the_connection(start_server: StartServer) -> None:
    server = start_server("--header-timeout", "1")
    port = server.wait_ready()
    trickle = socket.create_connection(("127.0.0.1", port), timeout=30)
    idle = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        trickle.sendall(b"POST /score HTTP/1.1\r\nHost: local")
        status, _, body = read_response(trickle)
        assert status == 408 and b"HEADER_TIMEOUT" in body
        assert trickle.recv(1) == b""
        status, _, body = read_response(idle)  # connected, never sent a byte
        assert status == 408 and idle.recv(1) == b""
        assert request(port, post("/score", b"fine"))[0] == 200
    finally:
        trickle.close()
        idle.close()
    assert "did not arrive within 1s" in server.output()


# -- run() timeout ------------------------------------------------------------------------------
def test_run_timeout_is_a_typed_504_then_503_until_the_thread_is_free(
    start_server: StartServer,
) -> None:
    server = start_server("--run-timeout", "1", env={"SLOW_S": "4"})
    port = server.wait_ready()
    status, _, body = request(port, post("/score", b"slow"))
    assert status == 504
    error = _json(body)
    assert error["code"] == "SCORING_TIMEOUT" and "1s" in error["error"]
    status, headers, body = request(port, post("/score", b"queued"))
    assert status == 503 and headers["retry-after"] == "1"
    assert _json(body)["code"] == "SCORING_OVERLOADED"
    deadline = time.monotonic() + 30
    while request(port, post("/score", b"after"))[0] != 200:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.2)
    assert server.calls[0] == "slow" and "queued" not in server.calls
    out = server.output()
    assert "run() did not return within 1s" in out and "POST /score 504" in out


# -- the log ------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_file", [False, True], ids=["stdout", "log-file"])
def test_control_characters_in_urls_cannot_forge_log_lines(
    start_server: StartServer, tmp_path: Path, with_file: bool
) -> None:
    args = ["--log-file", str(tmp_path / "service.log")] if with_file else []
    server = start_server(*args)
    port = server.wait_ready()
    forged = "2026-01-01T00:00:00Z%20POST%20/score%20200%200.10ms"
    for sep in ("%0a", "%0d", "%0d%0a", "%e2%80%a8", "%c2%85", "%1b[2K"):
        raw = f"GET /x{sep}{forged} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        assert request(port, raw)[0] == 404
    server.stop()
    lines = server.output().splitlines()
    probes = [ln for ln in lines if _ACCESS.match(ln) and " GET /x" in ln]
    assert len(probes) == 6  # one whole line per request
    assert all("\\x" in ln or "\\u" in ln for ln in probes)  # the separators, escaped
    # Every line is the server's own: an access line, or one of its messages; nothing forged.
    foreign = [ln for ln in lines if not _ACCESS.match(ln)]
    foreign = [ln for ln in foreign if not ln.startswith(("trainyard-serving:", "init:"))]
    assert foreign == [], server.output()
    assert not any(ln.startswith("2026-01-01T00:00:00Z") for ln in lines)
    assert "\u2028" not in server.output() and "\x1b" not in server.output()


def test_service_log_rotates_by_size_without_losing_lines(
    start_server: StartServer, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    server = start_server(
        "--log-file", log, "--log-max-bytes", "8192", "--log-backups", "3", "--workers", "2"
    )
    port = server.wait_ready()
    total = 600
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for i in range(total):
            sock.sendall(f"GET /probe-{i:04d} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            assert read_response(sock)[0] == 404
    assert server.stop() == 0
    files = [log, *(log.with_name(f"service.log.{i}") for i in (1, 2, 3))]
    assert all(f.exists() for f in files) and not log.with_name("service.log.4").exists()
    assert all(f.stat().st_size <= 8192 for f in files)
    lines = "".join(f.read_text() for f in reversed(files)).splitlines()
    seen = [int(m.group(1)) for ln in lines if (m := re.search(r"GET /probe-(\d{4}) 404", ln))]
    assert seen == list(range(total - len(seen), total)) and len(seen) > 150  # a whole suffix
    assert server.stdout_path.read_text() == ""  # everything went to the log file


def test_log_file_holds_the_init_traceback_when_the_server_exits(
    start_server: StartServer, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    broken = "def init():\n    raise RuntimeError('model file is corrupt')\n\ndef run(d):\n    return d\n"
    server = start_server("--log-file", log, script=broken)
    assert server.proc.wait(START_TIMEOUT_S) == 3
    text = log.read_text()  # read at once: the log must be complete when the exit is seen
    assert "RuntimeError: model file is corrupt" in text and "init failed" in text


# -- exposure -----------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_remote_bind_with_auth_off_is_refused_before_binding(host: str, tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(d):\n    return d\n")
    command = [sys.executable, "-m", "trainyard._serving", "--entry-script", "score.py"]
    command += ["--source-directory", str(tmp_path), "--host", host, "--port", "0"]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert f"refusing to listen on {host} with auth off" in proc.stderr
    assert "listening on" not in proc.stdout
