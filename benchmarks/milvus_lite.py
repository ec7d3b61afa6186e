"""The milvus store on Milvus Lite against the embedded store: request latency at N items.

For each store, a real server (`python -m service`, the shipped default bundle, a fresh data
directory; for Milvus Lite COREL_STORE=milvus with COREL_MILVUS_URI a `.db` file in it) is
filled with N items of random 128-d vectors (POST /items, 100 a request), then, one request
at a time with httpx: GET /items/{id} of a stored item, POST /items of 1 new vector and of
100, GET /neighbors?id=...&k=10; then 8 writers at once, each posting 5 new vectors a
request for a fixed time: items/s acknowledged (201).

Prints one markdown table, headed by where it came from (commit, machine, load, the
command), and writes it to benchmarks/results/milvus_lite.md (--quick writes none unless
--out).

    python benchmarks/milvus_lite.py            # 4,000 items: about 2-3 minutes
    python benchmarks/milvus_lite.py --quick    # 300 items, fewer requests: under a minute
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from harness import DEFAULT_BUNDLE, RESULTS  # noqa: E402
from harness.progress import say  # noqa: E402
from harness.results import Provenance, md_table, output_options, output_path  # noqa: E402
from harness.server import LocalServer, launch  # noqa: E402
from harness.writers import vector  # noqa: E402

STORES = {  # --store: (the name in the table, the server's settings for a data directory)
    "embedded": ("embedded", lambda data: {}),
    "lite": (
        "milvus (Milvus Lite)",
        lambda data: {"COREL_STORE": "milvus", "COREL_MILVUS_URI": str(data / "milvus.db")},
    ),
}
ENV = {"COREL_PROVIDER": "cpu", "COREL_LOG_LEVEL": "warning", "COREL_API_KEY": ""}
WRITERS, WRITER_BATCH = 8, 5
COLUMNS = ["store", "request", "requests", "p50 ms", "p99 ms"]


@dataclass
class StoreFigures:
    store: str
    items: int
    latencies: dict[str, list[float]] = field(default_factory=dict)  # request -> seconds
    written: int = 0  # items acknowledged by the concurrent writers
    writing_s: float = 0.0

    def rows(self) -> list[list[str]]:
        out = []
        for request, times in self.latencies.items():
            ms = np.array(times) * 1000
            out.append(
                [
                    self.store,
                    request,
                    str(len(times)),
                    f"{np.percentile(ms, 50):,.1f}",
                    f"{np.percentile(ms, 99):,.1f}",
                ]
            )
        return out

    @property
    def write_rate(self) -> float:
        return self.written / self.writing_s if self.writing_s else 0.0


def fill(client: httpx.Client, n: int) -> None:
    for start in range(0, n, 100):
        items = [{"id": f"it-{i}", "vector": vector(i)} for i in range(start, min(n, start + 100))]
        answer = client.post("/items", json={"items": items}, timeout=600)
        if answer.status_code != 201:
            raise SystemExit(f"POST /items: {answer.status_code} {answer.text[:300]}")


def timed(call: Callable[[int], httpx.Response], count: int) -> list[float]:
    """Seconds of each of `count` calls, one after another; every answer must be 2xx."""
    times = []
    for k in range(count):
        started = time.perf_counter()
        answer = call(k)
        times.append(time.perf_counter() - started)
        if not answer.is_success:
            raise SystemExit(f"{answer.request.method} {answer.request.url}: {answer.status_code}")
    return times


def concurrent_writes(url: str, seconds: float) -> tuple[int, float]:
    """WRITERS threads posting WRITER_BATCH new vectors a request for `seconds`: items
    acknowledged, and the seconds it took."""
    written = [0] * WRITERS
    stop = time.perf_counter() + seconds

    def writer(w: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            n = 0
            while time.perf_counter() < stop:
                batch = [
                    {"id": f"w{w}-{n}-{j}", "vector": vector(n * 10 + j)}
                    for j in range(WRITER_BATCH)
                ]
                n += 1
                if client.post("/items", json={"items": batch}).status_code == 201:
                    written[w] += len(batch)

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(written), time.perf_counter() - started


def measure(store: str, server: LocalServer, n: int, repeats: int, seconds: float) -> StoreFigures:
    """Fill the server with `n` items, then time each kind of request `repeats` times."""
    figures = StoreFigures(store, n)
    rng = np.random.default_rng(0)
    ids = [f"it-{i}" for i in rng.integers(0, n, repeats)]
    with server.client() as client:
        say(f"{store}: storing {n:,} items")
        fill(client, n)
        say(f"{store}: timing requests one at a time")
        figures.latencies["GET /items/{id}"] = timed(
            lambda k: client.get(f"/items/{ids[k]}"), repeats
        )
        figures.latencies["POST /items, 1 vector"] = timed(
            lambda k: client.post(
                "/items", json={"items": [{"id": f"one-{k}", "vector": vector(k)}]}
            ),
            repeats,
        )
        hundred = max(3, repeats // 5)
        figures.latencies["POST /items, 100 vectors"] = timed(
            lambda k: client.post(
                "/items",
                json={"items": [{"id": f"many-{k}-{j}", "vector": vector(j)} for j in range(100)]},
            ),
            hundred,
        )
        figures.latencies["GET /neighbors, k 10"] = timed(
            lambda k: client.get("/neighbors", params={"id": ids[k], "k": 10}), repeats
        )
    say(f"{store}: {WRITERS} writers of {WRITER_BATCH} items for {seconds:g} s")
    figures.written, figures.writing_s = concurrent_writes(server.url, seconds)
    return figures


def report(figures: list[StoreFigures]) -> str:
    """The results file's body: the latency table, then the writers' rates."""
    rows = [row for f in figures for row in f.rows()]
    lines = [
        *md_table(COLUMNS, rows),
        "",
        f"| store | {WRITERS} writers of {WRITER_BATCH} items: items/s acknowledged | items | s |",
        "|---|---|---|---|",
        *(
            f"| {f.store} | {f.write_rate:,.0f} | {f.written:,} | {f.writing_s:.1f} |"
            for f in figures
        ),
        "",
        f"Each store's server was filled with {figures[0].items:,} items (random 128-d vectors) "
        "first; requests one at a time through httpx from this process, on the same machine.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/milvus_lite.py", argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, help="items stored first (default 4,000)")
    parser.add_argument(
        "--store", choices=list(STORES), action="append", help="only this store (repeatable)"
    )
    output_options(parser, RESULTS / "milvus_lite.md", quick="300 items, 20 requests each")
    args = parser.parse_args(argv)
    n = args.items or (300 if args.quick else 4_000)
    repeats, seconds = (20, 3.0) if args.quick else (100, 10.0)
    figures = []
    for store in args.store or list(STORES):
        with tempfile.TemporaryDirectory(prefix="milvus-lite-bench-") as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            name, settings = STORES[store]
            env = {**ENV, **settings(data)}
            server = launch(
                bundle=DEFAULT_BUNDLE,
                data_dir=data,
                log=Path(tmp) / "server.log",
                env=env,
                timeout=180,
            )
            try:
                figures.append(measure(name, server, n, repeats, seconds))
            finally:
                server.stop()
    title = f"Milvus Lite and the embedded store at {n:,} items"
    provenance.publish(title, report(figures), output_path(args))


if __name__ == "__main__":
    main()
