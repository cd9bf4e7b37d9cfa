"""Model serving: a trainyard web service against ``mlflow models serve``, same model, same machine.

Run it with ``scripts/bench.sh serving`` (creates ``.venv-bench`` on first use), or directly with
``python benchmarks/serving.py [--seconds S] [--workers N] [--strict] [--quick] [--json FILE]``.

What is compared:

* the model: the Chainer MNIST MLP of ``examples/chainer-mnist``, trained here for one epoch;
* trainyard: ``Model.deploy`` with the example's ``chainer_score.py`` (``LocalWebservice``, no
  resource limits, ``worker_count=N``); requests ``{"data": [i]}`` and ``{"data": [16 x 784]}``;
* MLflow 3.17.2: ``mlflow.pyfunc.save_model`` of a ``PythonModel`` that runs the same network on
  the same arrays, served by ``mlflow models serve --env-manager local -w N``; requests
  ``{"inputs": [i]}`` and ``{"inputs": [16 x 784]}``;
* both servers run on the same interpreter: one environment (built once by trainyard's builder and
  cached) holds Chainer 7.8.1, MLflow, uvicorn with uvloop and httptools;
* one load generator for both (asyncio, raw HTTP/1.1 keep-alive connections, one per concurrent
  client): a warm-up, then closed-loop requests for ``--seconds`` at concurrency 1 and 16; every
  response must be 200 with the expected predictions.

Targets (from the issue): throughput ≥ MLflow's and p99 latency ≤ MLflow's in every scenario. The
exit code is 0 even when a target is missed (it is a report); ``--strict`` exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

REPO = _common.ROOT
SOURCE = REPO / "examples" / "chainer-mnist"
MNIST = REPO / "data" / "mnist"
MLFLOW_VERSION = "3.17.2"
CONCURRENCY = (1, 16)
PIXEL_BATCH = 16

_PYFUNC = '''
"""MLflow pyfunc wrapper around the Chainer MNIST network of examples/chainer-mnist."""
import chainer
import mlflow.pyfunc
import numpy as np
from chainer import serializers


class ChainerMnist(mlflow.pyfunc.PythonModel):
    """Same network, same test set, same arithmetic as chainer_score.run (no JSON re-encoding)."""

    def load_context(self, context):
        import chainer_score
        import datautils

        self.net = chainer_score.MyNetwork()
        serializers.load_npz(context.artifacts["model"], self.net)
        self.test_images = datautils.load_test_images()

    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input)
        if x.dtype.kind in "iu":
            images = self.test_images[x.reshape(-1)]
        else:
            images = x.reshape(-1, 784).astype(np.float32)
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            scores = self.net(images)
        return np.argmax(scores.array, axis=1)
'''

_SAVE = """
import sys
sys.path.insert(0, sys.argv[1])
import mlflow.pyfunc
from mnist_pyfunc import ChainerMnist
mlflow.pyfunc.save_model(
    sys.argv[2],
    python_model=ChainerMnist(),
    artifacts={"model": sys.argv[3]},
    code_paths=[sys.argv[1] + "/mnist_pyfunc.py", sys.argv[4] + "/chainer_score.py",
                sys.argv[4] + "/datautils.py"],
    pip_requirements=["chainer==7.8.1"],
)
"""


# -- environment and model --------------------------------------------------------------------
def bench_environment() -> Any:
    """The environment both servers run in: the Chainer pins, MLflow, uvicorn's fast loop/parser."""
    from trainyard._execution.environments.curated import CHAINER_PINS
    from trainyard.core.conda_dependencies import CondaDependencies
    from trainyard.core.environment import Environment

    # protobuf 3.20 (the Chainer pin) is too old for MLflow's OpenTelemetry; Chainer imports and
    # scores with the newer one.
    pins = [p for p in CHAINER_PINS if not p.startswith("protobuf")]
    env = Environment("bench-serving")
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=[*pins, f"mlflow=={MLFLOW_VERSION}", "uvloop", "httptools"],
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
    )
    env.environment_variables.update({"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)})
    return env


def train_model(python: str, tmp: Path) -> Path:
    """One epoch of the example's training script on 10,000 images; returns ``model.npz``."""
    out = tmp / "train-out"
    proc = subprocess.run(
        [python, str(SOURCE / "chainer_mnist.py"), "-e", "1", "-b", "128", "--train-slice",
         "10000", "--output_dir", str(out), "--data-folder", str(MNIST)],
        cwd=tmp, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    if proc.returncode != 0:
        raise _common.BenchmarkError(
            f"training failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return out / "model.npz"


def save_mlflow_model(python: str, model_npz: Path, tmp: Path) -> Path:
    """``mlflow.pyfunc.save_model`` of the wrapper, run in the shared environment."""
    code = tmp / "pyfunc-code"
    code.mkdir()
    (code / "mnist_pyfunc.py").write_text(textwrap.dedent(_PYFUNC).lstrip())
    target = tmp / "mlflow-model"
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    proc = subprocess.run(
        [python, "-c", _SAVE, str(code), str(target), str(model_npz), str(SOURCE)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp,
    )  # fmt: skip
    if proc.returncode != 0:
        raise _common.BenchmarkError(f"mlflow save_model failed:\n{proc.stderr[-3000:]}")
    return target


# -- servers ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """``mlflow models serve`` as a child process group (stopped with SIGTERM, then SIGKILL)."""

    def __init__(self, python: str, model_dir: Path, workers: int, log: Path) -> None:
        bindir = str(Path(python).parent)
        self.port = free_port()
        env = dict(
            os.environ,
            PATH=f"{bindir}:{os.environ.get('PATH', '')}",  # it starts `uvicorn` from PATH
            MLFLOW_DISABLE_TELEMETRY="true",
            DO_NOT_TRACK="true",
            OMP_NUM_THREADS="1",
            TRAINYARD_MNIST_DIR=str(MNIST),
        )
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(Path(bindir) / "mlflow"), "models", "serve", "-m", str(model_dir),
                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port),
                 "-w", str(workers)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}/invocations"

    def wait_ready(self, timeout: float = 180) -> float:
        import httpx

        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise _common.BenchmarkError(
                    f"mlflow serve exited:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ping", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise _common.BenchmarkError(f"mlflow serve not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# -- load generator ---------------------------------------------------------------------------
@dataclass
class Result:
    """One scenario against one server."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _request_bytes(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}",
             "Content-Type: application/json", f"Content-Length: {len(body)}"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return str(parts.hostname), int(parts.port or 80), head + body


async def _one_connection(
    host: str, port: int, request: bytes, stop_at: float, record_from: float,
    latencies: list[float], bodies: list[bytes], counts: list[int],
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            t1 = time.perf_counter()
            if status != 200:
                counts[1] += 1
                bodies.append(body)
            elif t0 >= record_from:
                latencies.append(t1 - t0)
                counts[0] += 1
                if len(bodies) < 1:
                    bodies.append(body)
    finally:
        writer.close()


@dataclass
class Sample:
    """Raw measurements of one stretch of load against one server."""

    latencies: list[float]
    seconds: float
    errors: int
    body: bytes


def load(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float,
         warmup: float) -> Sample:  # fmt: skip
    """Closed-loop load: ``concurrency`` keep-alive connections, each sending the next request as
    soon as the previous answer arrived; only requests started after ``warmup`` count."""
    host, port, request = _request_bytes(url, body, headers)
    latencies: list[float] = []
    bodies: list[bytes] = []
    counts = [0, 0]

    async def main() -> None:
        start = time.perf_counter()
        record_from = start + warmup
        stop_at = record_from + seconds
        await asyncio.gather(*(
            _one_connection(host, port, request, stop_at, record_from, latencies, bodies, counts)
            for _ in range(concurrency)
        ))  # fmt: skip

    asyncio.run(main())
    return Sample(latencies, seconds, counts[1], bodies[0] if bodies else b"")


def summarise(samples: Sequence[Sample]) -> Result:
    """Throughput and latency percentiles over every sample."""
    lat = sorted(x for s in samples for x in s.latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    return Result(
        requests=len(lat),
        seconds=sum(s.seconds for s in samples),
        p50_ms=statistics.median(lat) * 1000 if lat else float("nan"),
        p99_ms=p99 * 1000,
        errors=sum(s.errors for s in samples),
    )


def measure(
    targets: Sequence[tuple[str, bytes]], concurrency: int, seconds: float, warmup: float,
    rounds: int,
) -> list[tuple[Result, bytes]]:  # fmt: skip
    """Load each ``(url, body)`` target in turn for ``seconds / rounds``, ``rounds`` times, the
    order alternating, so that both servers see the same background noise of a busy machine."""
    samples: list[list[Sample]] = [[] for _ in targets]
    for i in range(rounds):
        order = list(range(len(targets)))
        if i % 2:
            order.reverse()
        for t in order:
            url, body = targets[t]
            w = warmup if i == 0 else min(warmup, 0.2)
            samples[t].append(load(url, body, {}, concurrency, seconds / rounds, w))
    return [(summarise(s), s[0].body) for s in samples]


# -- the run ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    name: str
    ours: bytes
    mlflow: bytes
    expected: list[int]


def scenarios(test_images: Any, predictions: list[int], index: int) -> list[Scenario]:
    pixels = test_images[:PIXEL_BATCH].astype(float).tolist()
    return [
        Scenario("single index", json.dumps({"data": [index]}).encode(),
                 json.dumps({"inputs": [index]}).encode(), [predictions[index]]),
        Scenario(f"{PIXEL_BATCH}-image pixel batch", json.dumps({"data": pixels}).encode(),
                 json.dumps({"inputs": pixels}).encode(), predictions[:PIXEL_BATCH]),
    ]  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per scenario")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (both)")
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternate the servers this many times per scenario"
    )
    parser.add_argument("--quick", action="store_true", help="1 s per scenario (smoke test)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--json", metavar="FILE", help="also write the measurements as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _common.bootstrap("serving", modules=("rich", "httpx", "numpy", "trainyard", "uvicorn"))
    if args.quick:
        args.seconds, args.warmup, args.rounds = 1.0, 0.3, 2
    from trainyard import __version__ as ty_version
    from trainyard._data.mnist import load_split
    from trainyard.core import Workspace
    from trainyard.core.model import InferenceConfig, Model
    from trainyard.core.webservice import LocalWebservice

    console = _common.make_console()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="trainyard-bench-serving-"))
    service = None
    mlflow_server: MlflowServer | None = None
    measured: dict[str, dict[str, Any]] = {}
    try:
        ws = Workspace.create("bench-serving", path=tmp / "ws")
        env = bench_environment()
        console.print("Environment (Chainer 7.8.1 + MLflow + uvicorn), built once and cached …")
        from trainyard.core.webservice._environment import build_python

        built = build_python(env, None, log=lambda line: None)
        console.print(f"  {built.python} ({'cached' if built.cached else 'built'})")
        console.print("Training the MNIST MLP for one epoch (10,000 images) …")
        model_npz = train_model(built.python, tmp)
        model = Model.register(ws, str(model_npz), "chainer-dnn-mnist")
        mlflow_dir = save_mlflow_model(built.python, model_npz, tmp)

        console.print(f"Deploying the trainyard service ({args.workers} worker(s)) …")
        t0 = time.perf_counter()
        service = Model.deploy(
            ws, "bench-mnist", [model],
            InferenceConfig(entry_script="chainer_score.py", source_directory=str(SOURCE),
                            environment=env),
            LocalWebservice.deploy_configuration(worker_count=args.workers),
        )  # fmt: skip
        service.wait_for_deployment()
        ours_ready = time.perf_counter() - t0
        if os.path.realpath(service.serialize()["python"]) != os.path.realpath(built.python):
            raise _common.BenchmarkError("the service does not run on the benchmark environment")
        console.print(f"Starting mlflow models serve ({args.workers} worker(s)) …")
        mlflow_server = MlflowServer(built.python, mlflow_dir, args.workers, tmp / "mlflow.log")
        mlflow_ready = mlflow_server.wait_ready()

        images, _ = load_split("test", str(MNIST))
        predictions = service.run(json.dumps({"data": list(range(PIXEL_BATCH * 4))}))
        runs = scenarios(images, predictions, index=7)
        table = _common.ResultTable(
            f"Serving the Chainer MNIST model ({args.workers} worker(s) each, "
            f"{args.seconds:.0f} s per scenario)",
            peer=f"MLflow {MLFLOW_VERSION}",
        )
        for sc in runs:
            for conc in CONCURRENCY:
                label = f"{sc.name}, concurrency {conc}"
                console.print(f"  {label} …")
                (ours, ours_body), (peer, peer_body) = measure(
                    [(service.scoring_uri or "", sc.ours), (mlflow_server.url, sc.mlflow)],
                    conc, args.seconds, args.warmup, args.rounds,
                )  # fmt: skip
                if json.loads(ours_body) != sc.expected:
                    raise _common.BenchmarkError(f"trainyard answered {ours_body[:200]!r}")
                if json.loads(peer_body).get("predictions") != sc.expected:
                    raise _common.BenchmarkError(f"MLflow answered {peer_body[:200]!r}")
                if ours.errors or peer.errors:
                    raise _common.BenchmarkError(
                        f"errors: ours {ours.errors}, MLflow {peer.errors}"
                    )
                measured[label] = {"trainyard": asdict(ours), "mlflow": asdict(peer)}
                ratio = ours.rps / peer.rps
                table.add(f"{label}: requests/s", f"{ours.rps:,.0f}", f"{peer.rps:,.0f}",
                          _common.fmt_ratio(ratio), "≥ 1.0x MLflow", ratio >= 1.0)  # fmt: skip
                table.add(f"{label}: p50 latency", f"{ours.p50_ms:.2f} ms", f"{peer.p50_ms:.2f} ms",
                          _common.fmt_ratio(peer.p50_ms / ours.p50_ms))  # fmt: skip
                table.add(f"{label}: p99 latency", f"{ours.p99_ms:.2f} ms", f"{peer.p99_ms:.2f} ms",
                          _common.fmt_ratio(peer.p99_ms / ours.p99_ms), "≤ MLflow's",
                          ours.p99_ms <= peer.p99_ms)  # fmt: skip
        table.add("start until healthy (deploy / serve)", f"{ours_ready:.1f} s",
                  f"{mlflow_ready:.1f} s")  # fmt: skip
        table.note(
            "Same interpreter and packages for both servers (one cached uv environment with "
            "Chainer 7.8.1, MLflow, uvicorn + uvloop + httptools); same network and test set; "
            "trainyard runs the example's chainer_score.py unchanged."
        )
        table.note(
            "Load: one asyncio client, raw HTTP/1.1 keep-alive connections (one per concurrent "
            f"client), closed loop; per scenario and server {args.seconds:.0f} s measured in "
            f"{args.rounds} slices alternating between the servers (warm-up {args.warmup:.1f} s); "
            "every response checked (status 200, predictions equal across servers)."
        )
        table.note(
            "Latency ratios are MLflow's / trainyard's (above 1x: trainyard is faster). The "
            "load generator shares the machine's cores with the servers."
        )
        table.note(
            "trainyard's start time covers Model.deploy → Healthy (deployer process, cached "
            "environment, model download, server start, init()); MLflow's covers `mlflow models "
            "serve` → /ping answering."
        )
    finally:
        if mlflow_server is not None:
            mlflow_server.stop()
        if service is not None:
            service.delete()
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started
    _common.print_machine_info({"trainyard": ty_version, "mlflow": MLFLOW_VERSION})
    busy = _common.busy_warning(load_before)
    if busy:
        console.print(f"[yellow]{busy}[/]")
    table.print()
    console.print(f"total benchmark time {total:.0f} s")
    if args.json:
        report = {"workers": args.workers, "seconds": args.seconds, "results": measured}
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 1 if args.strict and table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
