"""A large artifact through a live ``trainyard server``: upload and download time, and the server's
peak RSS over its idle RSS (it must stay flat: bodies are streamed, never held).

    python benchmarks/server_upload.py --gib 2

Prints one JSON line: sizes, seconds and MB/s each way, and the server's RSS before and at its peak.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from trainyard._store.rest.artifacts import RestArtifactStore
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.rest.transport import Transport
from trainyard.testing.server import start_server

MIB = 1 << 20


def _rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return int(proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=2.0)
    args = parser.parse_args(argv)
    size_mib = int(args.gib * 1024)
    with tempfile.TemporaryDirectory(prefix="ty-upload-bench-") as tmp:
        root = Path(tmp)
        server = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
        try:
            ws = RestTrackingStore(server.url, server.admin_token).ensure_workspace("bench")
            files = RestArtifactStore(Transport(server.url, server.admin_token), ws.name)
            files.write_bytes("warm.bin", b"x" * MIB)
            src = root / "big.bin"
            block = os.urandom(MIB)
            want = hashlib.sha256()
            with open(src, "wb") as out:
                for i in range(size_mib):
                    chunk = block[i % 997 :] + block[: i % 997]
                    want.update(chunk)
                    out.write(chunk)
            idle = _rss(server.process.pid)
            peak = [idle]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.02):
                    peak[0] = max(peak[0], _rss(server.process.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            files.write_file("big.bin", src)
            up_s = time.perf_counter() - started
            up_peak = peak[0]
            started = time.perf_counter()
            got = hashlib.sha256()
            for chunk in files.iter_bytes("big.bin"):
                got.update(chunk)
            down_s = time.perf_counter() - started
            stop.set()
            sampler.join()
            assert got.hexdigest() == want.hexdigest(), "downloaded bytes differ"
        finally:
            server.stop()
    print(
        json.dumps(
            {
                "size_mib": size_mib,
                "upload_s": round(up_s, 2),
                "upload_mib_s": round(size_mib / up_s, 1),
                "download_s": round(down_s, 2),
                "download_mib_s": round(size_mib / down_s, 1),
                "server_rss_idle_mib": round(idle / MIB, 1),
                "server_rss_peak_upload_mib": round(up_peak / MIB, 1),
                "server_rss_peak_mib": round(peak[0] / MIB, 1),
                "server_rss_growth_mib": round((peak[0] - idle) / MIB, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
