"""Bad input and what the server must never do, over a live server.

Body limits are counted on the bytes read (a chunked body has no length to trust, a lying
``Content-Length`` only decides how much is read); artifacts stream past the limit; user files come
back as attachments that browsers must not sniff; the server's code never unpickles and never
fetches a URL a client hands it.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainyard
from trainyard._store.rest.artifacts import RestArtifactStore
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.rest.transport import Transport
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer, start_server

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    root = tmp_path_factory.mktemp("limits")
    server = start_server(
        f"sqlite:///{root / 'ty.db'}", root / "files", extra_args=["--max-json-bytes", str(LIMIT)]
    )
    ws = RestTrackingStore(server.url, server.admin_token).ensure_workspace(unique_name("ws"))
    yield server, ws.name
    server.stop()


def _raw(
    server: LiveServer, head: str, chunks: Iterator[bytes]
) -> tuple[int, dict[str, str], bytes]:
    """Send a hand-made request; return the first answer's status, headers and body."""
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all: that is the point
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        header, _, body = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        want = int(headers.get("content-length", "0"))
        while len(body) < want:
            part = sock.recv(65536)
            if not part:
                break
            body += part
    return int(lines[0].split()[1]), headers, body


def _head(server: LiveServer, method: str, path: str, extra: str) -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.admin_token}\r\nContent-Type: application/json\r\n{extra}\r\n"
    )


def _big_json(size: int) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(size // 8192):
        yield b"a" * 8192
    yield b'"}'


def test_chunked_body_without_length_is_cut_at_the_limit(small: tuple[LiveServer, str]) -> None:
    server, _ = small

    def chunked() -> Iterator[bytes]:
        for piece in _big_json(16 * LIMIT):
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        yield b"0\r\n\r\n"

    head = _head(server, "POST", "/api/v1/store/get_workspace", "Transfer-Encoding: chunked\r\n")
    status, _, body = _raw(server, head, chunked())
    assert status == 413
    assert json.loads(body)["error"]["code"] == "TOO_LARGE"


def test_declared_length_over_the_limit_is_refused_before_reading(
    small: tuple[LiveServer, str],
) -> None:
    server, _ = small
    head = _head(server, "POST", "/api/v1/store/get_workspace", f"Content-Length: {LIMIT * 16}\r\n")
    status, headers, _ = _raw(server, head, iter([b"{"]))
    assert status == 413 and headers["x-trainyard-error-code"] == "TOO_LARGE"


def test_a_lying_content_length_decides_only_how_much_is_read(
    small: tuple[LiveServer, str],
) -> None:
    """20 bytes declared, a megabyte sent: the server answers after the 20 (a typed 400, they are
    no JSON object) and treats the rest as what it is, garbage on the connection (uvicorn's
    parser refuses it with a 400 and closes): nothing past the declared length is a body."""
    server, _ = small
    head = _head(server, "POST", "/api/v1/store/get_workspace", "Content-Length: 20\r\n")
    body = b"".join(_big_json(16 * LIMIT))
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + body[:20])
        answer = sock.recv(65536)
        while b"}}" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.split()[1] == b"400"
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "INVALID_VALUE"
        try:
            sock.sendall(body[20:])
            garbage = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            garbage = b""
        assert not garbage or garbage.split()[1].startswith(b"4")
    assert RestTrackingStore(server.url, server.admin_token).list_workspaces()  # still serving


def test_artifact_uploads_stream_past_the_json_limit(small: tuple[LiveServer, str]) -> None:
    server, ws = small
    files = RestArtifactStore(Transport(server.url, server.admin_token), ws)
    data = bytes(range(256)) * (LIMIT // 16)
    files.write_bytes("big.bin", data)
    assert files.read_bytes("big.bin") == data


def test_user_files_are_attachments_and_never_sniffed(small: tuple[LiveServer, str]) -> None:
    server, ws = small
    files = RestArtifactStore(Transport(server.url, server.admin_token), ws)
    files.write_bytes("page.html", b"<script>alert(1)</script>")
    for method in ("GET", "HEAD"):
        path = f"/api/v1/workspaces/{ws}/artifacts/page.html"
        resp = Transport(server.url, server.admin_token).request(method, path)
        resp.read()
        assert resp.getheader("Content-Disposition", "").startswith("attachment;")
        assert resp.getheader("X-Content-Type-Options") == "nosniff"
        assert resp.getheader("Content-Type") == "application/octet-stream"


def _server_sources() -> list[Path]:
    pkg = Path(trainyard.__file__).parent
    return [*(pkg / "server").rglob("*.py"), *(pkg / "_store").rglob("*.py")]


def test_the_server_never_unpickles() -> None:
    pattern = re.compile(
        r"\b(import pickle|from pickle|cPickle|import dill|import joblib|import shelve|marshal\.loads"
        r"|torch\.load|allow_pickle\s*=\s*True|yaml\.load\(|yaml\.unsafe_load|jsonpickle)"
    )
    hits = [
        f"{p}: {m.group(0)}" for p in _server_sources() for m in pattern.finditer(p.read_text())
    ]
    assert not hits, hits


def test_the_server_opens_no_outgoing_connections_in_its_code() -> None:
    pattern = re.compile(
        r"\b(urllib\.request|urlopen|import requests|import httpx|import aiohttp|http\.client"
        r"|socket\.create_connection)"
    )
    server_code = list((Path(trainyard.__file__).parent / "server").rglob("*.py"))
    hits = [f"{p}: {m.group(0)}" for p in server_code for m in pattern.finditer(p.read_text())]
    assert not hits, hits


def test_urls_given_by_a_client_are_never_fetched(small: tuple[LiveServer, str]) -> None:
    server, ws = small
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    hits: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                hits.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/x"
    t = Transport(server.url, server.admin_token)
    base = f"/api/v1/workspaces/{ws}"
    calls = [
        ("POST", f"{base}/artifacts-link", {"src": url, "dst": "a.txt"}),
        ("POST", f"{base}/artifacts-link", {"src": "big.bin", "dst": url}),
        ("POST", f"{base}/artifacts-delete-prefix", {"prefix": url}),
        ("POST", "/api/v1/store/get_workspace", {"name": url}),
        ("POST", "/api/v1/store/ensure_workspace", {"name": url}),
    ]
    try:
        for method, path, body in calls:
            with pytest.raises(trainyard.exceptions.TrainyardError) as info:
                t.call_json(method, path, body)
            assert 400 <= info.value.http_status < 500
        stop.wait(0.5)
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert not hits
