"""Serving throughput: raw onnxruntime against the real HTTP service, micro-batching on and off.

In one run on one machine:

1. raw onnxruntime items/s on the bundle's encoder, in this process (an InferenceSession on
   the CPU provider), at batch 1 and batch 128, on real Fashion-MNIST test images;
2. the real server (`python -m service --host 127.0.0.1 --port P`, a subprocess with a
   temporary data dir) started twice, with COREL_BATCHING=true and false; against each,
   POST /embed and POST /classify with one image per request at concurrency 1, 8, 32 and 64
   (requests/s, p50 and p99 latency), and POST /embed with 128 images per request (items/s,
   to set beside raw onnxruntime at batch 128), sent as pixel arrays, as PNG files and as
   `tensor` bytes (uint8, with `encoding_format: base64` for the answer);
3. beside the batching-on server, a naive peer (benchmarks/naive_peer.py: plain FastAPI and
   one onnxruntime session, no micro-batching; under uvicorn, one worker, a subprocess)
   posted the same one-image /classify bodies at the same concurrencies;
4. at concurrency 32 (8 in quick mode), our /classify, the peer's /classify and our /embed
   (batching on) loaded in turn by Debian's `wrk` (a C load generator, which leaves the
   cores to the servers), `--wrk-rounds` times: the peer's targets are judged on these
   (/classify >= 1.3x the peer's and >= 0.9x our /embed), and the same ratios from the
   cells of steps 2 and 3 are printed beside them.

Each cell runs for a fixed time (`--duration`, after a short warm-up that is not counted):
`concurrency` callers send pre-serialised JSON bodies back to back, each on its own
keep-alive connection. Throughput counts the answers that arrived inside the measured
window. The server and this load generator share the machine's cores; the table says how
much CPU each used.

The load generator is a minimal asyncio HTTP/1.1 client by default (about 0.1 ms of CPU per
request). `--client httpx` uses one httpx.AsyncClient with its pool sized to the
concurrency instead; measured on 2 cores it spent 3 to 13 ms of CPU per request, more as
the concurrency grew, and became the bottleneck (fewer requests/s at concurrency 64 than at
8, with the server mostly idle), so it measures the client rather than the service.

Prints two markdown tables (this client's cells, then wrk's), the derived ratios with their
targets, and the command that reproduces it, headed by where it came from (commit, machine,
load); the full run also saves them to benchmarks/results/serve_throughput.md.

    python benchmarks/serve_throughput.py                # about 4 minutes
    python benchmarks/serve_throughput.py --quick        # smoke test, about 30 s, not saved
    python benchmarks/serve_throughput.py --client httpx # the same load through httpx
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata
import io
import itertools
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from corel.bundle import load_bundle  # noqa: E402
from harness import DEFAULT_BUNDLE, FASHION_DIR, RESULTS, wrk  # noqa: E402
from harness.cpu import own_cpu, process_cpu  # noqa: E402
from harness.results import Provenance, md_table, output_options, output_path, verdict  # noqa: E402
from harness.server import LocalServer, free_port, launch, start  # noqa: E402
from service.inference.runtime import session_options  # noqa: E402
from training.data import load_fashion_mnist_split  # noqa: E402

DEFAULT_OUT = RESULTS / "serve_throughput.md"
CONCURRENCY, QUICK_CONCURRENCY = (1, 8, 32, 64), (1, 8)
BULK = 128  # items per request in the bulk /embed rows, and the raw onnxruntime batch
BULK_PNG = "POST /embed (PNG)"  # the bulk rows again, the images sent as base64 PNG files
BULK_TENSOR = "POST /embed (tensor)"  # and as base64 uint8 bytes, base64 float32 back
BULK_CONCURRENCY, QUICK_BULK_CONCURRENCY = (1, 4), (1,)
DISTINCT_BODIES = 64  # one-item requests cycle through this many different test images
REQUEST_TIMEOUT_S = 30.0
SPEEDUP_TARGET, BULK_SHARE_TARGET = 3.0, 0.5
PEER = "POST /classify (naive peer)"  # benchmarks/naive_peer.py, sent our /classify bodies
PEER_TARGET, EMBED_SHARE_TARGET = 1.3, 0.9  # our /classify over the peer's; over our /embed
WRK_ROUNDS = 2  # turns of the three wrk cells, so that a drift of the machine hits all alike
WRK_COLUMNS = [
    "measurement",
    "batching",
    "round",
    "concurrency",
    "items/request",
    "requests/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU %",
    "wrk CPU %",
]
COLUMNS = [
    "measurement",
    "batching",
    "concurrency",
    "items/request",
    "requests/s",
    "items/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU %",
    "client CPU %",
]


@dataclass
class Cell:
    what: str  # "onnxruntime (CPU)", "POST /embed", ...
    batching: str  # "on" | "off" | "-"
    concurrency: int | None
    items_per_request: int
    seconds: float  # the measured window
    latencies: list[float] = field(default_factory=list)  # seconds, one per answer counted
    errors: int = 0
    server_cpu: float | None = None  # % of one core over the window
    client_cpu: float | None = None

    @property
    def per_s(self) -> float:  # requests (or onnxruntime runs) per second
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        return self.per_s * self.items_per_request

    def cells(self) -> list[str]:
        lat = np.array(self.latencies) * 1000
        p50, p99 = (f"{np.percentile(lat, q):.1f}" if lat.size else "-" for q in (50, 99))
        http = self.what.startswith("POST")

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}"

        return [
            self.what,
            self.batching,
            str(self.concurrency or "-"),
            str(self.items_per_request),
            f"{self.per_s:,.0f}" if http else "-",
            f"{self.items_per_s:,.0f}",
            p50,
            p99,
            str(self.errors) if http else "-",
            pct(self.server_cpu),
            pct(self.client_cpu),
        ]


@dataclass
class WrkCell:
    what: str  # "POST /classify", PEER or "POST /embed"
    batching: str  # "on" for ours, "-" for the peer
    round: int
    concurrency: int
    run: wrk.Wrk

    def cells(self) -> list[str]:
        return [
            self.what,
            self.batching,
            str(self.round),
            str(self.concurrency),
            "1",
            f"{self.run.rps:,.0f}",
            f"{self.run.p50_ms:.1f}",
            f"{self.run.p99_ms:.1f}",
            str(self.run.errors),
            f"{self.run.cpu['server']:.0f}",
            f"{self.run.wrk_cpu:.0f}",
        ]


# -- inputs -----------------------------------------------------------------------------------


def test_images(n: int) -> np.ndarray:
    """The first `n` Fashion-MNIST test images, (n, 1, 28, 28) float32 pixels 0..255."""
    images, _ = load_fashion_mnist_split(FASHION_DIR, "test")
    return images[:n]


def body(inputs: np.ndarray, *, form: str = "data") -> bytes:
    """A request body with one input per image: `data` (28x28 integer pixels), `image` (a
    base64 PNG file) or `tensor` (the pixels' uint8 bytes; the answer then in base64 too)."""
    payload: dict[str, object] = {"inputs": [_input(image[0], form) for image in inputs]}
    if form == "tensor":
        payload["encoding_format"] = "base64"
    return json.dumps(payload, separators=(",", ":")).encode()


def _input(pixels: np.ndarray, form: str) -> dict[str, object]:
    if form == "image":
        return {"image": _png(pixels)}
    if form == "tensor":
        return {"tensor": {"b64": base64.b64encode(pixels.astype(np.uint8).tobytes()).decode()}}
    return {"data": pixels.astype(int).tolist()}


def _png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# -- raw onnxruntime --------------------------------------------------------------------------


RAW, RAW_SERVED = "onnxruntime (CPU)", "onnxruntime (CPU, as served)"


def raw_onnxruntime(
    bundle: Path,
    images: np.ndarray,
    batch: int,
    seconds: float,
    *,
    served: bool = False,
    again: bool = False,
) -> Cell:
    """Back-to-back runs of one CPU InferenceSession: onnxruntime's default session options,
    or (`served`) the service's own (service.inference.runtime.session_options: COREL_THREADS, no
    spinning), so the bulk ratio is taken against whichever is fastest here."""
    spec = load_bundle(bundle).manifest.input
    options = session_options(0) if served else ort.SessionOptions()
    session = ort.InferenceSession(
        str(bundle / "encoder.onnx"), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    model_ready = spec.to_model(images)
    batches = (
        [np.ascontiguousarray(np.resize(model_ready, (batch, *model_ready.shape[1:])))]
        if batch > len(model_ready)
        else [model_ready[i : i + batch] for i in range(0, len(model_ready) - batch + 1, batch)]
    )
    for x in batches[:3]:  # warm-up
        session.run(None, {name: x})
    cell = Cell(
        (RAW_SERVED if served else RAW) + (" again" if again else ""), "-", None, batch, seconds
    )
    cpu0, started = own_cpu(), time.perf_counter()
    for x in itertools.cycle(batches):
        t = time.perf_counter()
        session.run(None, {name: x})
        now = time.perf_counter()
        cell.latencies.append(now - t)
        if now - started >= seconds:
            break
    cell.seconds = time.perf_counter() - started
    cell.client_cpu = 100 * (own_cpu() - cpu0) / cell.seconds
    return cell


# -- the server -------------------------------------------------------------------------------


def start_server(bundle: Path, data_dir: Path, batching: bool) -> tuple[LocalServer, dict]:
    """`python -m service` on 127.0.0.1 and a free port, ready; with its batcher settings.

    Only the bundle, data dir, batching switch and provider are set here (plus log level
    `warning`: no access-log line per request); every other COREL_* setting is the default
    or whatever this process's environment says, and the report prints the batcher's.
    """
    env = {
        "COREL_BATCHING": "true" if batching else "false",
        "COREL_PROVIDER": "cpu",
        "COREL_LOG_LEVEL": "warning",
        "COREL_API_KEY": "",
    }
    try:
        server = launch(
            bundle=bundle, data_dir=data_dir, log=data_dir / "server.log", env=env, timeout=120
        )
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc
    return server, httpx.get(f"{server.url}/model", timeout=10).json()["batching"]


def start_peer(bundle: Path, work: Path) -> LocalServer:
    """benchmarks/naive_peer.py under uvicorn's command line (one worker, log level
    `warning` like the service: no access-log line per request) on 127.0.0.1 and a free
    port, ready once it answers its OpenAPI page (the model loads before it listens)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "naive_peer:app", "--app-dir",
               str(ROOT / "benchmarks"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--log-level", "warning"]  # fmt: skip
    try:
        return start(
            command,
            port=port,
            data_dir=work,
            log=work / "peer.log",
            env={"COREL_BUNDLE_PATH": str(bundle)},
            ready="/openapi.json",
            timeout=120,
        )
    except RuntimeError as exc:
        raise SystemExit(f"the naive peer: {exc}") from exc


# -- the load generator -----------------------------------------------------------------------


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: one connection per caller, request bytes built
    once. About 0.1 ms of CPU per request, so the cores go to the server being measured."""

    def __init__(self, url: str, path: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port, self.path = int(port), path
        self._writers: list[asyncio.StreamWriter] = []

    def request(self, body: bytes) -> bytes:
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def caller(self) -> Callable[[bytes], Awaitable[bool]]:
        reader, writer = await asyncio.open_connection(self.host, self.port)

        async def post(request: bytes) -> bool:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            return head.startswith(b"HTTP/1.1 200 ")

        self._writers.append(writer)
        return post

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        for writer in self._writers:
            writer.close()


async def load(
    url: str,
    path: str,
    bodies: list[bytes],
    *,
    client: str,
    concurrency: int,
    seconds: float,
    warm_up: float,
    pid: int,
) -> tuple[list[float], int, float, float | None, float]:
    """`concurrency` callers post `bodies` (in turn) back to back for warm_up + seconds.

    Returns the latencies of the 200 answers that arrived inside the measured window, the
    other answers (errors) in it, the window's length, and server and client CPU % in it.
    """
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    window_start, stop_at = start + warm_up, start + warm_up + seconds

    async def run_caller(
        post: Callable[[bytes], Awaitable[bool]], requests: Iterator[bytes]
    ) -> None:
        nonlocal errors
        while (sent := time.perf_counter()) < stop_at:
            try:
                ok = await post(next(requests))
            except (OSError, asyncio.IncompleteReadError, httpx.HTTPError):
                ok = False
            done = time.perf_counter()
            if window_start <= done <= stop_at:
                if ok:
                    latencies.append(done - sent)
                else:
                    errors += 1

    async def sample_cpu() -> tuple[float | None, float]:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        server0, client0 = process_cpu(pid), own_cpu()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        server1, client1 = process_cpu(pid), own_cpu()
        server_pct = 100 * (server1 - server0) / seconds
        if math.isnan(server_pct):  # /proc unreadable: not measured
            return None, 100 * (client1 - client0) / seconds
        return server_pct, 100 * (client1 - client0) / seconds

    budget = warm_up + seconds + REQUEST_TIMEOUT_S + 5
    if client == "httpx":  # one client, its pool sized to the concurrency
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=url,
            limits=limits,
            timeout=REQUEST_TIMEOUT_S,
            headers={"content-type": "application/json"},
        ) as http:

            async def post(content: bytes) -> bool:
                return (await http.post(path, content=content)).status_code == 200

            sampler = asyncio.create_task(sample_cpu())
            await asyncio.wait_for(
                asyncio.gather(
                    *(run_caller(post, itertools.cycle(bodies)) for _ in range(concurrency))
                ),
                timeout=budget,
            )
    else:
        async with RawClient(url, path) as raw:
            posts = [await raw.caller() for _ in range(concurrency)]
            requests = itertools.cycle([raw.request(b) for b in bodies])
            sampler = asyncio.create_task(sample_cpu())
            await asyncio.wait_for(
                asyncio.gather(*(run_caller(post, requests) for post in posts)), timeout=budget
            )
    server_cpu, client_cpu = await sampler
    return latencies, errors, seconds, server_cpu, client_cpu


def against_server(
    bundle: Path,
    images: np.ndarray,
    *,
    batching: bool,
    client: str,
    concurrencies: tuple[int, ...],
    bulk_concurrencies: tuple[int, ...],
    seconds: float,
    warm_up: float,
    peer: bool = False,
    wrk_at: int | None = None,
    wrk_rounds: int = WRK_ROUNDS,
) -> tuple[list[Cell], list[WrkCell], dict[str, object]]:
    """Our server's cells; with `peer`, the naive peer's one-image /classify cells too
    (started beside it, so both are measured in the same minutes), and with `wrk_at` the
    wrk turns at that concurrency."""
    label = "on" if batching else "off"
    singles = [body(images[n : n + 1]) for n in range(DISTINCT_BODIES)]
    classify = [b[:-1] + b',"k":3}' for b in singles]
    bulk, bulk_png = [body(images[:BULK])], [body(images[:BULK], form="image")]
    bulk_tensor = [body(images[:BULK], form="tensor")]
    plan = (
        [("POST /embed", "/embed", singles, c, 1) for c in concurrencies]
        + [("POST /classify", "/classify", classify, c, 1) for c in concurrencies]
        + ([(PEER, "/classify", classify, c, 1) for c in concurrencies] if peer else [])
        + [("POST /embed", "/embed", bulk, c, BULK) for c in bulk_concurrencies]
        + [(BULK_PNG, "/embed", bulk_png, c, BULK) for c in bulk_concurrencies]
        + [(BULK_TENSOR, "/embed", bulk_tensor, c, BULK) for c in bulk_concurrencies]
    )
    cells, wrk_cells = [], []
    with tempfile.TemporaryDirectory(prefix="serve-throughput-") as data_dir:
        work = Path(data_dir)
        (work / "service").mkdir()  # its own data dir: the peer's log and wrk's scripts beside
        server, config = start_server(bundle, work / "service", batching)
        peer_server = None
        try:
            peer_server = start_peer(bundle, work) if peer else None
            for what, path, bodies, concurrency, items in plan:
                target = peer_server if what == PEER and peer_server is not None else server
                lat, errors, window, server_cpu, client_cpu = asyncio.run(
                    load(
                        target.url,
                        path,
                        bodies,
                        client=client,
                        concurrency=concurrency,
                        seconds=seconds,
                        warm_up=warm_up,
                        pid=target.process.pid,
                    )
                )
                cells.append(
                    Cell(
                        what,
                        "-" if target is peer_server else label,
                        concurrency,
                        items,
                        window,
                        lat,
                        errors,
                        server_cpu,
                        client_cpu,
                    )
                )
                _progress(cells[-1])
            if wrk_at is not None and peer_server is not None:
                turns = [
                    ("POST /classify", label, server, "/classify", classify),
                    (PEER, "-", peer_server, "/classify", classify),
                    ("POST /embed", label, server, "/embed", singles),
                ]
                for round_ in range(1, wrk_rounds + 1):
                    for what, batch_label, target, path, bodies in turns:
                        script = wrk.lua_cycle([("POST", path, b.decode()) for b in bodies])
                        run = wrk.run(
                            target.url,
                            script,
                            connections=wrk_at,
                            seconds=max(1, round(seconds)),  # wrk takes whole seconds
                            work=work,
                            watch={"server": target.process.pid},
                        )
                        wrk_cells.append(WrkCell(what, batch_label, round_, wrk_at, run))
                        print("  wrk: " + " | ".join(wrk_cells[-1].cells()), file=sys.stderr)
        finally:
            server.stop()
            if peer_server is not None:
                peer_server.stop()
    return cells, wrk_cells, config


# -- the report -------------------------------------------------------------------------------


def _progress(cell: Cell) -> None:
    print("  " + " | ".join(cell.cells()), file=sys.stderr, flush=True)


def _find(cells: list[Cell], what: str, batching: str, concurrency: int, items: int) -> Cell:
    return next(
        c
        for c in cells
        if (c.what, c.batching, c.concurrency, c.items_per_request)
        == (what, batching, concurrency, items)
    )


def _verdict(ok: bool) -> str:
    return verdict(ok, "FAIL")


def table(cells: list[Cell]) -> list[str]:
    return md_table(COLUMNS, [c.cells() for c in cells])


def wrk_table(cells: list[WrkCell]) -> list[str]:
    return md_table(WRK_COLUMNS, [c.cells() for c in cells])


def _wrk_rate(cells: list[WrkCell], what: str) -> float:
    """Requests/s of `what` over all its wrk rounds: requests over seconds, summed."""
    runs = [c.run for c in cells if c.what == what]
    seconds = sum(r.seconds for r in runs)
    return sum(r.requests for r in runs) / seconds if seconds else 0.0


def peer_ratios(
    cells: list[Cell], wrk_cells: list[WrkCell], concurrency: int, client: str
) -> list[str]:
    """Our /classify (batching on) over the naive peer's and over our /embed, and /embed over
    the peer, at `concurrency` with one image per request: from wrk's rounds, then from this
    client's cells."""

    def from_cells(what: str) -> float:
        return _find(cells, what, "-" if what == PEER else "on", concurrency, 1).per_s

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("inf")

    lines = []
    sources = [("wrk", lambda what: _wrk_rate(wrk_cells, what))] if wrk_cells else []
    for source, rate in [*sources, (client, from_cells)]:
        classify, peer, embed = rate("POST /classify"), rate(PEER), rate("POST /embed")
        where = f"concurrency {concurrency}, 1 image per request, batching on ({source})"
        over_peer, over_embed = ratio(classify, peer), ratio(classify, embed)
        lines += [
            f"| /classify requests/s / the naive peer's /classify, {where} | "
            f"{over_peer:.2f}x | >= {PEER_TARGET:g}x | {verdict(over_peer >= PEER_TARGET)} |",
            f"| /classify requests/s / /embed requests/s, {where} | {over_embed:.2f}x | "
            f">= {EMBED_SHARE_TARGET:g}x | {verdict(over_embed >= EMBED_SHARE_TARGET)} |",
            f"| /embed requests/s / the naive peer's /classify, {where} | "
            f"{ratio(embed, peer):.2f}x | - | - |",
        ]
    return lines


def ratios(cells: list[Cell], concurrency: int, wrk_cells: list[WrkCell], client: str) -> list[str]:
    lines = ["| ratio | measured | target | verdict |", "|---|---|---|---|"]
    lines += peer_ratios(cells, wrk_cells, concurrency, client)
    for path in ("/embed", "/classify"):
        on = _find(cells, f"POST {path}", "on", concurrency, 1)
        off = _find(cells, f"POST {path}", "off", concurrency, 1)
        speedup = on.per_s / off.per_s if off.per_s else float("inf")
        lines.append(
            f"| {path} requests/s, batching on / off, concurrency {concurrency}, "
            f"1 item per request | {speedup:.2f}x | >= {SPEEDUP_TARGET:g}x | "
            f"{_verdict(speedup >= SPEEDUP_TARGET)} |"
        )
    raw = max(
        (c for c in cells if c.what.startswith("onnxruntime") and c.items_per_request == BULK),
        key=lambda c: c.items_per_s,
    )
    for what, form in (
        ("POST /embed", "items"),
        (BULK_PNG, "PNG images"),
        (BULK_TENSOR, "tensor inputs"),
    ):
        best = max(
            (c for c in cells if c.what == what and c.items_per_request == BULK),
            key=lambda c: c.items_per_s,
        )
        share = best.items_per_s / raw.items_per_s if raw.items_per_s else 0.0
        lines.append(
            f"| /embed with {BULK} {form} per request (best: batching "
            f"{best.batching}, concurrency {best.concurrency}) items/s / raw "
            f"onnxruntime batch {BULK} items/s (the fastest raw row) | {share:.2f} | "
            f">= {BULK_SHARE_TARGET:g} | {_verdict(share >= BULK_SHARE_TARGET)} |"
        )
    raw1 = max(
        (c for c in cells if c.what.startswith("onnxruntime") and c.items_per_request == 1),
        key=lambda c: c.items_per_s,
    )
    gain = raw.items_per_s / raw1.items_per_s if raw1.items_per_s else 0.0
    lines += [
        "",
        f"For scale: raw onnxruntime itself does {gain:.2f}x "
        f"the items/s at batch {BULK} that it does at batch 1 on this machine, which bounds "
        "what any batching can gain over one-item runs when the model's compute, not the "
        "per-request overhead, is what costs.",
    ]
    if gain < SPEEDUP_TARGET:
        lines.append(
            f"That ceiling is below the {SPEEDUP_TARGET:g}x target: with this model on "
            "this CPU no server, however cheap its HTTP handling, can meet it."
        )
    return lines


def _version(package: str) -> str:
    return importlib.metadata.version(package)


def _wrk_version() -> str:
    """`wrk debian/4.1.0-3+b2`: the first two words `wrk -v` prints (it exits 1 after)."""
    shown = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    return " ".join((shown.stdout + shown.stderr).split()[:2]) or "wrk"


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/serve_throughput.py", argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    output_options(parser, DEFAULT_OUT, quick="smoke test: 1 s cells, concurrency 1 and 8 only")
    parser.add_argument(
        "--duration", type=float, help="measured seconds per cell (default 5, quick 1)"
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: a minimal asyncio HTTP/1.1 client (default) or "
        "one httpx.AsyncClient (costs the client ~30x more CPU per request)",
    )
    parser.add_argument(
        "--wrk-rounds",
        type=int,
        help=f"turns of the three wrk cells (default {WRK_ROUNDS}, quick 1)",
    )
    parser.add_argument("--note", help="a line for the results file, e.g. what else ran")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    seconds = args.duration or (1.0 if args.quick else 5.0)
    warm_up = 0.3 if args.quick else 1.0
    concurrencies = QUICK_CONCURRENCY if args.quick else CONCURRENCY
    bulk_concurrencies = QUICK_BULK_CONCURRENCY if args.quick else BULK_CONCURRENCY
    images = test_images(max(BULK, DISTINCT_BODIES))
    ratio_at = 32 if 32 in concurrencies else max(concurrencies)
    wrk_rounds = args.wrk_rounds or (1 if args.quick else WRK_ROUNDS)

    def raw_cells(again: bool) -> list[Cell]:
        measured = [
            raw_onnxruntime(args.bundle, images, batch, seconds, served=served, again=again)
            for served in (False, True)
            for batch in (1, BULK)
        ]
        for cell in measured:
            _progress(cell)
        return measured

    cells = raw_cells(again=False)
    configs, wrk_cells = {}, []
    for batching in (True, False):
        server_cells, batching_wrk, configs[batching] = against_server(
            args.bundle,
            images,
            batching=batching,
            client=args.client,
            concurrencies=concurrencies,
            bulk_concurrencies=bulk_concurrencies,
            seconds=seconds,
            warm_up=warm_up,
            peer=batching,  # beside the default server: the one the peer's targets are about
            wrk_at=ratio_at if batching else None,
            wrk_rounds=wrk_rounds,
        )
        cells += server_cells
        wrk_cells += batching_wrk
    # The speed of these shared machines drifts over minutes: measuring the reference at both
    # ends and comparing against the fastest brackets the server cells fairly.
    cells += raw_cells(again=True)

    on = configs[True]
    client = (
        "one httpx.AsyncClient with as many pooled connections as callers"
        if args.client == "httpx"
        else "a minimal asyncio HTTP/1.1 client, one keep-alive connection per caller"
    )
    short_client = "httpx" if args.client == "httpx" else "asyncio client"
    lines = [
        *table(cells),
        "",
        f"With wrk, concurrency {ratio_at}, one image per request, {wrk_rounds} round"
        f"{'s' if wrk_rounds > 1 else ''} of the three in turn:",
        "",
        *wrk_table(wrk_cells),
        "",
        *ratios(cells, ratio_at, wrk_cells, short_client),
        "",
        "The naive peer's targets are judged on the wrk lines (wrk's requests over its "
        "seconds, all rounds together); the lines marked "
        f"({short_client}) are the same ratios from the first table's cells.",
        "",
        f"Each cell: {seconds:g} s measured after a {warm_up:g} s warm-up; callers send "
        f"back to back through {client}; bodies serialised "
        f"before the clock starts (one-item requests cycle through {DISTINCT_BODIES} "
        "Fashion-MNIST test images). Server: `python -m service` on 127.0.0.1, one "
        f"uvicorn process, COREL_PROVIDER=cpu, COREL_LOG_LEVEL=warning; batcher "
        f"max_batch_size={on.get('max_batch_size')}, max_wait_ms={on.get('max_wait_ms')}. "
        "Raw onnxruntime: one CPU InferenceSession in this process, with onnxruntime's "
        "default session options (every core, spinning threads) and, 'as served', with "
        "the server's (COREL_THREADS, default all cores but one, no spinning), measured "
        "before the servers and 'again' after them. Naive peer: benchmarks/naive_peer.py "
        "(FastAPI's defaults: the standard library's json and a pydantic body; no "
        "micro-batching; one CPU InferenceSession with one intra-op thread, run in the "
        "endpoint; the nearest normalised class vector by cosine), under `uvicorn "
        "naive_peer:app` with one worker and log level warning, started beside the "
        "batching-on server and sent the same /classify bodies (it ignores `k`). wrk: "
        f"{max(1, round(seconds))} s a cell, 2 threads, the same {DISTINCT_BODIES} bodies "
        "in turn, on the servers already warmed by the first table's cells. CPU % is "
        "of one core (100 = one core busy) over the measured window.",
    ]
    extra = [
        f"Versions: onnxruntime {ort.__version__}, httpx {httpx.__version__}, "
        f"fastapi {_version('fastapi')}, uvicorn {_version('uvicorn')}, {_wrk_version()}"
    ]
    if provenance.load_start[0] >= 0.5:
        extra.append(
            f"**Shared machine**: the load average was {provenance.load_start[0]:.2f} on "
            f"{provenance.cpus} CPUs before the run, so other work competed for the cores "
            "with the server and this load generator. Absolute numbers are low; the ratios, "
            "measured side by side in one run, are the figures to read."
        )
    if args.note:
        extra.append(f"Note: {args.note}")
    provenance.publish("Serving throughput", "\n".join(lines), output_path(args), extra=extra)


if __name__ == "__main__":
    main()
