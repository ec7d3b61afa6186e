"""Per-request CPU of the service's own Python, without sockets or a load generator.

The app runs in this process (`create_app`, its lifespan, the shipped default bundle, the
CPU provider, batching on) and each request is one ASGI call, sent one after another. For
each kind of request the table gives the wall time and the CPU time of this process per
request (all threads: the event loop and the inference thread), the model's own time for
that batch size (the same onnxruntime session, called directly), and the difference: what
HTTP handling, validation, preprocessing and serialisation cost around the model.

It answers "where does a request's time go" more steadily than serve_throughput.py, which
shares the cores with its load generator, and `--profile` prints cProfile's top functions
for one kind of request.

The table, headed by where it came from (commit, machine, load, the command), is printed
and written to benchmarks/results/request_overhead.md (--quick writes none unless --out).

    python benchmarks/request_overhead.py                  # about 25 s
    python benchmarks/request_overhead.py --quick          # 32 requests a kind, not saved
    python benchmarks/request_overhead.py --profile "/embed, 1 data"
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from benchmarks.serve_throughput import body, test_images  # noqa: E402
from harness import DEFAULT_BUNDLE, RESULTS  # noqa: E402
from harness.results import Provenance, md_table, output_options, output_path  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

# (name, path, items per request, input form)
CASES = [
    ("/embed, 1 data", "/embed", 1, "data"),
    ("/embed, 1 tensor", "/embed", 1, "tensor"),
    ("/classify, 1 data", "/classify", 1, "data"),
    ("/embed, 128 data", "/embed", 128, "data"),
    ("/embed, 128 image", "/embed", 128, "image"),
    ("/embed, 128 tensor", "/embed", 128, "tensor"),
]
COLUMNS = [
    "request",
    "items",
    "requests",
    "wall us/request",
    "CPU us/request",
    "model us/run",
    "CPU around the model us/request",
]


async def post(app: Any, path: str, payload: bytes) -> int:
    """One HTTP request as a single ASGI call; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ],
    }
    sent, finished, status = False, asyncio.Event(), []

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await finished.wait()  # the client stays until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif not message.get("more_body"):
            finished.set()

    await app(scope, receive, send)
    return status[0]


def model_seconds(app: Any, images: np.ndarray, items: int, repeats: int) -> float:
    """Median time of the app's own onnxruntime session on `items` model-ready images."""
    spec, run = app.state.corel.bundle.manifest.input, app.state.corel.runtime.run
    batch = spec.to_model(np.resize(images, (items, *images.shape[1:])))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


async def measure(requests: int, profile: str | None) -> list[list[str]]:
    images = test_images(128)
    with tempfile.TemporaryDirectory(prefix="request-overhead-") as data_dir:
        app = create_app(
            settings=Settings(bundle_path=DEFAULT_BUNDLE, data_dir=Path(data_dir), provider="cpu")
        )
        rows = []
        async with app.router.lifespan_context(app):
            for name, path, items, form in CASES:
                payloads = [
                    body(images[n : n + items], form=form)
                    for n in range(0, 64 if items == 1 else 1)
                ]
                count = requests if items == 1 else max(1, requests // 16)
                for payload in payloads[:5]:  # warm-up
                    assert await post(app, path, payload) == 200, name
                profiler = cProfile.Profile() if name == profile else None
                wall, cpu = time.perf_counter(), time.process_time()
                if profiler:
                    profiler.enable()
                for n in range(count):
                    await post(app, path, payloads[n % len(payloads)])
                if profiler:
                    profiler.disable()
                    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                model = model_seconds(app, images, items, repeats=max(5, count // 4))
                per_request = cpu / count
                rows.append(
                    [
                        name,
                        str(items),
                        str(count),
                        f"{wall / count * 1e6:,.0f}",
                        f"{per_request * 1e6:,.0f}",
                        f"{model * 1e6:,.0f}",
                        f"{(per_request - model) * 1e6:,.0f}",
                    ]
                )
                print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/request_overhead.py", argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests",
        type=int,
        help="one-item requests per kind (128-item kinds: a 16th of it; default 2000)",
    )
    output_options(parser, RESULTS / "request_overhead.md", quick="32 requests a kind")
    parser.add_argument(
        "--profile",
        choices=[case[0] for case in CASES],
        help="print cProfile's top functions for this kind to stderr",
    )
    args = parser.parse_args(argv)
    requests = args.requests or (32 if args.quick else 2000)
    rows = asyncio.run(measure(requests, args.profile))
    lines = [
        *md_table(COLUMNS, rows),
        "",
        "Sequential ASGI calls in one process (no sockets): CPU is this process's, all "
        "threads; the model column is the same onnxruntime session called directly at "
        "that batch size (median), so the last column is what the service spends around "
        "the model.",
    ]
    provenance.publish("Where a request's time goes", "\n".join(lines), output_path(args))


if __name__ == "__main__":
    main()
