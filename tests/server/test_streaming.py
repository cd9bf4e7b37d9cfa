"""Large artifacts stream through a live server both ways with flat server memory, and an upload
survives a dropped connection: the client resumes from what the server holds.

(A 2 GB run of the same measurement: ``python benchmarks/server_upload.py --gib 2``.)
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from trainyard._store.rest.artifacts import RestArtifactStore
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.rest.transport import Transport
from trainyard.exceptions import ArtifactNotFound
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer, start_server

MIB = 1 << 20


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, Path]]:
    root = tmp_path_factory.mktemp("stream")
    server = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    ws = RestTrackingStore(server.url, server.admin_token).ensure_workspace(unique_name("ws"))
    yield server, ws.name, root
    server.stop()


def _rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return int(proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True)))


class PeakRss:
    """Samples a process tree's RSS every 20 ms from a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, _rss(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _big_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with open(path, "wb") as out:
        for i in range(mib):
            chunk = block[i % 256 :] + block[: i % 256]
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def test_300_mb_up_and_down_with_flat_server_memory(served: tuple[LiveServer, str, Path]) -> None:
    server, ws, root = served
    files = RestArtifactStore(Transport(server.url, server.admin_token), ws)
    files.write_bytes("warm.bin", b"x" * MIB)
    files.read_bytes("warm.bin")
    src = root / "big.bin"
    want = _big_file(src, 300)
    baseline = _rss(server.process.pid)
    with PeakRss(server.process.pid) as rss:
        assert files.write_file("big/300.bin", src) == 300 * MIB
        got = hashlib.sha256()
        for chunk in files.iter_bytes("big/300.bin"):
            got.update(chunk)
    src.unlink()
    assert got.hexdigest() == want
    grew = (rss.peak - baseline) / MIB
    assert grew < 60, f"server RSS grew {grew:.0f} MiB for a 300 MiB round trip"


def _put_half_then_drop(server: LiveServer, path: str, upload_id: str, data: bytes) -> None:
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.admin_token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n"
        f"X-Trainyard-Upload-Id: {upload_id}\r\nContent-Range: bytes 0-{len(data) - 1}/{len(data)}"
        "\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + data[: len(data) // 2])
        time.sleep(0.3)
    # closed with half the body sent


def test_a_dropped_upload_resumes_from_what_the_server_holds(
    served: tuple[LiveServer, str, Path],
) -> None:
    server, ws, _ = served
    data = os.urandom(12 * MIB)
    upload_id = uuid.uuid4().hex
    path = f"/api/v1/workspaces/{ws}/artifacts/resumed.bin"
    _put_half_then_drop(server, path, upload_id, data)
    t = Transport(server.url, server.admin_token)
    deadline = time.monotonic() + 10
    while True:  # the server notices the drop and keeps what it read
        status = t.call_json("GET", f"/api/v1/workspaces/{ws}/artifact-uploads/{upload_id}")
        if status["offset"] > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    held = int(status["offset"])
    assert 0 < held <= len(data) // 2 and status["total"] == len(data)
    files = RestArtifactStore(t, ws)
    with pytest.raises(ArtifactNotFound):
        files.size("resumed.bin")  # an unfinished upload is never visible
    headers = {
        "Content-Range": f"bytes {held}-{len(data) - 1}/{len(data)}",
        "X-Trainyard-Upload-Id": upload_id,
        "Content-Length": str(len(data) - held),
    }
    resp = t.request("PUT", path, data[held:], headers=headers)
    assert resp.status == 200 and b'"complete":true' in resp.read()
    assert files.read_bytes("resumed.bin") == data


class CuttingProxy:
    """A TCP proxy to the server that cuts its first connection after ``cut`` bytes upstream."""

    def __init__(self, target: tuple[str, int], cut: int) -> None:
        self.target, self.cut, self.upstream_bytes, self.cuts = target, cut, 0, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        first = True
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            limit = self.cut if first else None
            first = False
            up = threading.Thread(target=self._pump, args=(client, upstream, limit, True))
            down = threading.Thread(target=self._pump, args=(upstream, client, None, False))
            up.daemon = down.daemon = True
            up.start()
            down.start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None, count: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
                if count:
                    self.upstream_bytes += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.sock.close()


def test_the_rest_client_resumes_by_itself(served: tuple[LiveServer, str, Path]) -> None:
    server, ws, root = served
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    proxy = CuttingProxy((host, int(port)), cut=10 * MIB)
    try:
        files = RestArtifactStore(Transport(proxy.url, server.admin_token), ws)
        src = root / "resume.bin"
        want = _big_file(src, 24)
        assert files.write_file("auto/resume.bin", src) == 24 * MIB
    finally:
        proxy.close()
    assert proxy.cuts == 1
    direct = RestArtifactStore(Transport(server.url, server.admin_token), ws)
    assert hashlib.sha256(direct.read_bytes("auto/resume.bin")).hexdigest() == want
    # it sent the rest, not the whole file again
    assert proxy.upstream_bytes < 24 * MIB * 1.3, proxy.upstream_bytes / MIB


def test_http_client_sees_no_content_before_completion(
    served: tuple[LiveServer, str, Path],
) -> None:
    server, ws, _ = served
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "GET",
        f"/api/v1/workspaces/{ws}/artifact-uploads/{'0' * 32}",
        headers={"Authorization": f"Bearer {server.admin_token}", "Host": "127.0.0.1"},
    )
    resp = conn.getresponse()
    assert resp.status == 404 and resp.getheader("X-Trainyard-Error-Code") == "NOT_FOUND"
    conn.close()
