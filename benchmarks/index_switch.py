"""Latency while the item index is built or switched: queries right after a bulk ingest.

One run, through the real server (`python -m service`, default settings, a fresh data
directory, 127.0.0.1, the default bundle):

1. ingest: N items (default 200,000; real Fashion-MNIST embeddings from the item search
   benchmark's cache, benchmarks/search/data.py) through POST /items as raw `vector`s, 1,000
   per request, one request after another, as fast as the server acknowledges them. With
   `COREL_INDEX_KIND=auto` the index starts exact (`flat`) and switches to HNSW in the
   background from 50,000 items, then merges what arrived meanwhile;
2. from the moment the last batch is acknowledged: GET /neighbors of stored ids with Debian's
   `wrk` (a C load generator, which leaves the cores to the server) in consecutive short
   windows, concurrency 1 and 8 in turn, for a fixed span (default 120 s) long enough to
   cover the background rebuild and merges. Beside each window: what GET /items says the
   index is doing (kind, main and delta sizes, the running job) before and after it, and
   recall@10 against numpy exact search over the N items (computed before the server
   starts) of queries sent between windows: stored items by id (GET /neighbors, as wrk
   sends and as issue 22 measured them) and held-out query vectors (POST /neighbors).

p50/p99 per concurrency come from wrk's full latency histograms (one per window, merged),
not from the windows' own percentiles: over the whole span, and during the switch (the
windows that started before GET /items showed the background work done), which a long span
of settled queries would otherwise dilute. Prints a markdown table and the target's
PASS/MISS lines (issue 22: p99 <= 15 ms at concurrency 1 and recall@10 >= 0.99 from the end
of ingest on), and writes benchmarks/results/index_switch.md in full mode.

    python benchmarks/index_switch.py            # N = 200,000: about 4 minutes on 2 cores
    python benchmarks/index_switch.py --quick    # 20,000 items, switch at 10,000, 1 s windows
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from benchmarks.search.data import CACHE, TIE_EPS, Data, K, dataset, exact_topk  # noqa: E402
from benchmarks.search.server import (  # noqa: E402
    index_state,
    neighbour_scripts,
    start_server,
)
from corel.class_rule import l2_normalise  # noqa: E402
from harness import DEFAULT_BUNDLE, RESULTS, wrk  # noqa: E402
from harness.progress import say  # noqa: E402
from harness.results import Provenance, md_table, output_options, output_path, verdict  # noqa: E402

DEFAULT_OUT = RESULTS / "index_switch.md"
BATCH = 1_000  # items per POST /items
RECALL_PER_WINDOW = 20  # stored ids, and as many held-out vectors, asked after each window
RECALL_SEED = 79
TARGET_P99_MS, TARGET_RECALL = 15.0, 0.99
CONNECTIONS = (1, 8)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, help="N (default 200,000; quick 20,000)")
    parser.add_argument("--span", type=float, help="seconds of queries (default 120; quick 8)")
    parser.add_argument("--window", type=float, help="seconds per wrk window (default 5; quick 1)")
    parser.add_argument(
        "--auto-threshold",
        type=int,
        help="COREL_INDEX_AUTO_THRESHOLD (default: the server's own, 50,000; quick N / 2)",
    )
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE, help="embeddings (%(default)s)")
    parser.add_argument("--note", help="a line for the results file, e.g. what else ran")
    output_options(parser, DEFAULT_OUT, quick="20,000 items, an 8 s span of 1 s windows")
    args = parser.parse_args(argv)
    quick = args.quick
    args.items = args.items or (20_000 if quick else 200_000)
    args.span = args.span or (8.0 if quick else 120.0)
    args.window = args.window or (1.0 if quick else 5.0)
    if args.auto_threshold is None and quick:
        args.auto_threshold = args.items // 2  # so that the quick run switches too
    args.cache = args.cache.resolve()
    return args


# -- latency histograms ----------------------------------------------------------------------


def histogram_script(plain: str, path: Path) -> str:
    """A wrk script that, besides harness.wrk's `WRK` line, writes its latency histogram
    (`microseconds count` per line) to `path`: windows merged give the span's percentiles."""
    return (
        plain
        + f"""
local summary_done = done
done = function(summary, latency, requests)
  summary_done(summary, latency, requests)
  local f = io.open({wrk.lua(str(path))}, "w")
  for i = 1, #latency do
    local value, count = latency(i)
    f:write(string.format("%d %d\\n", value, count))
  end
  f:close()
end
"""
    )


def read_histogram(path: Path) -> dict[int, int]:
    out: dict[int, int] = {}
    for line in path.read_text().splitlines():
        value, count = line.split()
        out[int(value)] = out.get(int(value), 0) + int(count)
    return out


def merge(histograms: list[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in histograms:
        for value, count in h.items():
            out[value] = out.get(value, 0) + count
    return out


def percentile_ms(histogram: dict[int, int], p: float) -> float:
    """The smallest latency (ms) at or below which p % of the requests fall."""
    total = sum(histogram.values())
    if total == 0:
        return math.nan
    need, seen = math.ceil(total * p / 100), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= need:
            return value / 1000
    return max(histogram) / 1000


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Window:
    """One wrk window and what the index was doing around it."""

    start_s: float  # since the last batch was acknowledged
    end_s: float
    connections: int
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    server_cpu: float
    load: float
    before: dict[str, Any]
    after: dict[str, Any]
    hits: dict[str, int] = field(default_factory=dict)  # recall queries' hits, by kind
    histogram: dict[int, int] = field(default_factory=dict, repr=False)


def describe(state: dict[str, Any]) -> str:
    """`kind main+delta`, and the job as `name→kind done/total` when one runs."""
    text = f"{state.get('kind', '?')} {state.get('main', 0):,}+{state.get('delta', 0):,}"
    job = state.get("job")
    if job:
        text += f", {job['job']}→{job['kind']} {int(job['done']):,}/{int(job['total']):,}"
    return text


def ingest(client: httpx.Client, data: Data) -> tuple[float, list[float]]:
    """POST /items of every item, BATCH at a time; (seconds, each request's seconds)."""
    n = len(data.vectors)
    took, started = [], time.perf_counter()
    for start in range(0, n, BATCH):
        items = [
            {
                "id": f"fm-{i}",
                "vector": data.vectors[i].tolist(),
                "label": data.label_names[data.labels[i]],
                "metadata": {"bucket": int(data.buckets[i])},
            }
            for i in range(start, min(n, start + BATCH))
        ]
        t = time.perf_counter()
        answer = client.post("/items", json={"items": items}, timeout=300)
        took.append(time.perf_counter() - t)
        if answer.status_code != 201:
            raise SystemExit(f"POST /items: {answer.status_code} {answer.text[:500]}")
        if (start // BATCH) % 50 == 49:
            say(f"ingest: {start + BATCH:,} of {n:,}; index {describe(index_state(client))}")
    return time.perf_counter() - started, took


@dataclass
class Truth:
    """The recall queries and each one's exact k-th best score over the N items."""

    stored: np.ndarray  # rows of stored items asked by id (not their own neighbour)
    stored_kth: np.ndarray
    held_kth: np.ndarray  # of each held-out query vector, data.queries order

    @classmethod
    def of(cls, data: Data, unit: np.ndarray, seed: int) -> Truth:
        rng = np.random.default_rng([seed, RECALL_SEED])
        stored = rng.choice(len(unit), min(1_000, len(unit)), replace=False)
        scores, rows = exact_topk(unit, unit[stored], K + 1)
        mine = rows == stored[:, None]  # each item's own row, dropped where it shows
        kth = np.array([s[~m][K - 1] for s, m in zip(scores, mine, strict=True)])
        held = exact_topk(unit, l2_normalise(data.queries).astype(np.float32), K)[0][:, -1]
        return cls(stored, kth, held)


def hits(found: list[dict[str, Any]], unit: np.ndarray, query: np.ndarray, kth: float) -> int:
    """Hits among the answer's neighbours: those scoring within TIE_EPS of the exact k-th
    best (float ties)."""
    got = np.array([int(h["id"][3:]) for h in found], np.int64)
    sims = unit[got] @ query if len(got) else np.zeros(0)
    return min(K, int((sims >= kth - TIE_EPS).sum()))


def recall_sample(
    client: httpx.Client, data: Data, truth: Truth, unit: np.ndarray, start: int
) -> dict[str, int]:
    """Hits of RECALL_PER_WINDOW stored ids (GET /neighbors) and as many held-out vectors
    (POST /neighbors), the `start`-th onwards of each list."""
    out = {"stored": 0, "held-out": 0}
    for n in range(start, start + RECALL_PER_WINDOW):
        row = int(truth.stored[n % len(truth.stored)])
        answer = client.get("/neighbors", params={"id": f"fm-{row}", "k": K})
        if answer.status_code != 200:
            raise SystemExit(f"/neighbors: {answer.status_code} {answer.text[:300]}")
        kth = truth.stored_kth[n % len(truth.stored)]
        out["stored"] += hits(answer.json()["neighbors"], unit, unit[row], kth)
        q = n % len(data.queries)
        body = {"queries": [{"vector": data.queries[q].tolist()}], "k": K}
        answer = client.post("/neighbors", json=body)
        if answer.status_code != 200:
            raise SystemExit(f"/neighbors: {answer.status_code} {answer.text[:300]}")
        query = l2_normalise(data.queries[q : q + 1])[0]
        out["held-out"] += hits(
            answer.json()["results"][0]["neighbors"], unit, query, truth.held_kth[q]
        )
    return out


def recall(windows: list[Window], kind: str) -> float:
    asked = len(windows) * RECALL_PER_WINDOW * K
    return sum(w.hits.get(kind, 0) for w in windows) / asked if asked else math.nan


@dataclass
class Run:
    items: int
    ingest_s: float
    ingest_p99_ms: float
    auto_threshold: int | None
    windows: list[Window]
    settled_s: float | None  # when GET /items first showed no job and a small delta
    final: dict[str, Any]


def measure(args: argparse.Namespace, data: Data, work: Path) -> Run:
    unit = l2_normalise(data.vectors).astype(np.float32)
    say(f"exact top-{K} of the recall queries over {len(unit):,} items")
    truth = Truth.of(data, unit, args.seed)
    plain = neighbour_scripts(data, args.seed)["none"]
    extra = {}
    if args.auto_threshold is not None:
        extra["COREL_INDEX_AUTO_THRESHOLD"] = str(args.auto_threshold)
    server, _ = start_server(args.bundle, work / "data", "auto", work / "server.log", extra)
    windows: list[Window] = []
    settled: float | None = None
    try:
        with server.client() as client:
            say(f"ingest of {len(unit):,} items, {BATCH:,} per POST /items")
            ingest_s, took = ingest(client, data)
            t0 = time.perf_counter()
            say(f"ingest done in {ingest_s:.1f} s; index {describe(index_state(client))}")
            next_query = 0
            while time.perf_counter() - t0 < args.span:
                connections = CONNECTIONS[len(windows) % len(CONNECTIONS)]
                before = index_state(client)
                path = work / f"latency-{len(windows)}.txt"
                start = time.perf_counter() - t0
                cell = wrk.run(
                    server.url,
                    histogram_script(plain, path),
                    connections=connections,
                    seconds=args.window,
                    work=work,
                    watch={"server": server.process.pid},
                )
                end = time.perf_counter() - t0
                after = index_state(client)
                window = Window(
                    start_s=start,
                    end_s=end,
                    connections=connections,
                    requests=cell.requests,
                    p50_ms=cell.p50_ms,
                    p99_ms=cell.p99_ms,
                    max_ms=cell.max_ms,
                    errors=cell.errors,
                    server_cpu=cell.cpu["server"],
                    load=cell.load,
                    before=before,
                    after=after,
                    hits=recall_sample(client, data, truth, unit, next_query),
                    histogram=read_histogram(path),
                )
                windows.append(window)
                next_query += RECALL_PER_WINDOW
                if settled is None and quiet(after):
                    settled = end
                say(
                    f"  {start:5.1f}-{end:5.1f} s c={connections}: p50 {cell.p50_ms:.1f} ms, "
                    f"p99 {cell.p99_ms:.1f} ms, recall {recall([window], 'stored'):.3f} / "
                    f"{recall([window], 'held-out'):.3f}; {describe(after)}"
                )
            final = index_state(client)
    finally:
        server.stop()
    took_ms = np.array(took) * 1000
    return Run(
        items=len(unit),
        ingest_s=ingest_s,
        ingest_p99_ms=float(np.percentile(took_ms, 99)),
        auto_threshold=args.auto_threshold,
        windows=windows,
        settled_s=settled,
        final=final,
    )


def quiet(state: dict[str, Any]) -> bool:
    """No job running and the kind the index wants: the background work is done (the
    delta left is below a merge's threshold)."""
    return not state.get("job") and state.get("kind") == state.get("wanted")


# -- the report ------------------------------------------------------------------------------

COLUMNS = [
    "t s",
    "connections",
    "requests",
    "p50 ms",
    "p99 ms",
    "max ms",
    "errors",
    "server CPU %",
    "load",
    "recall@10 stored ids",
    "recall@10 held-out",
    "index before (kind main+delta, job)",
    "index after",
]


def window_cells(w: Window) -> list[str]:
    return [
        f"{w.start_s:.0f}-{w.end_s:.0f}",
        str(w.connections),
        f"{w.requests:,}",
        f"{w.p50_ms:.1f}",
        f"{w.p99_ms:.1f}",
        f"{w.max_ms:.0f}",
        str(w.errors),
        f"{w.server_cpu:.0f}",
        f"{w.load:.2f}",
        f"{recall([w], 'stored'):.3f}",
        f"{recall([w], 'held-out'):.3f}",
        describe(w.before),
        describe(w.after),
    ]


def report(run: Run, span: float, window: float) -> str:
    threshold = f"{run.auto_threshold:,}" if run.auto_threshold else "the default, 50,000"
    lines = [
        f"N={run.items:,} items ingested through POST /items ({BATCH:,} raw vectors per "
        f"request, one after another) in {run.ingest_s:.1f} s ({run.items / run.ingest_s:,.0f}"
        f" items/s, a request's p99 {run.ingest_p99_ms:.0f} ms); COREL_INDEX_KIND=auto, "
        f"HNSW from {threshold} items. From the moment the last batch was acknowledged: "
        f"GET /neighbors of stored ids (k={K}) with wrk in {window:g} s windows, concurrency "
        f"{' and '.join(map(str, CONNECTIONS))} in turn, for {span:g} s. After each window, "
        f"recall@{K} against numpy exact search of {RECALL_PER_WINDOW} stored items asked by "
        f"id (GET /neighbors, as wrk asks them) and of {RECALL_PER_WINDOW} held-out query "
        "vectors (POST /neighbors: harder, their recall is HNSW's own at efSearch 128). The "
        "index columns are GET /items' `index` before and after the window.",
        "",
        *md_table(COLUMNS, [window_cells(w) for w in run.windows]),
        "",
        "Over the whole span and during the switch (the windows that started before the "
        "background work was done), wrk's latency histograms merged:",
        "",
    ]
    switch = [w for w in run.windows if run.settled_s is None or w.start_s < run.settled_s]
    rows, p99 = [], {}
    for period, windows in (("whole span", run.windows), ("during the switch", switch)):
        for c in CONNECTIONS:
            mine = [w for w in windows if w.connections == c]
            merged = merge([w.histogram for w in mine])
            p99[period, c] = percentile_ms(merged, 99)
            rows.append(
                [
                    period,
                    str(c),
                    f"{sum(w.end_s - w.start_s for w in mine):.0f}",
                    f"{sum(merged.values()):,}",
                    f"{percentile_ms(merged, 50):.1f}",
                    f"{p99[period, c]:.1f}",
                    f"{max(merged, default=0) / 1000:.0f}",
                    f"{max((w.p99_ms for w in mine), default=math.nan):.1f}",
                    str(sum(w.errors for w in mine)),
                    f"{recall(mine, 'stored'):.4f}",
                    f"{recall(mine, 'held-out'):.4f}",
                ]
            )
    columns = ["period", "connections", "seconds", "requests", "p50 ms", "p99 ms", "max ms"]
    columns += ["worst window's p99 ms", "errors", "recall@10 stored ids", "recall@10 held-out"]
    lines += md_table(columns, rows)
    asked = len(run.windows) * RECALL_PER_WINDOW
    settled = (
        f"The background work was done {run.settled_s:.0f} s after the end of ingest"
        if run.settled_s is not None
        else f"The background work was still going at the end of the span ({span:g} s)"
    )
    errors = sum(w.errors for w in run.windows)
    lines += ["", f"{settled}; at the end: {describe(run.final)}.", ""]
    for period, what in (
        ("whole span", "from the end of ingest on"),
        ("during the switch", "during the switch"),
    ):
        ms = p99.get((period, 1), math.nan)
        lines.append(
            f"- p99 of GET /neighbors {what}, concurrency 1: {ms:.1f} ms "
            f"(target <= {TARGET_P99_MS:g} ms): {verdict(ms <= TARGET_P99_MS and errors == 0)}"
        )
    for kind, what in (("stored", "stored items by id"), ("held-out", "held-out query vectors")):
        value = recall(run.windows, kind)
        lines.append(
            f"- recall@{K} over the span, {what} ({asked} queries): {value:.4f} "
            f"(target >= {TARGET_RECALL}): {verdict(value >= TARGET_RECALL)}"
        )
    return "\n".join(lines) + "\n"


def raw(run: Run) -> dict[str, Any]:
    data = asdict(run)
    for w in data["windows"]:
        w.pop("histogram")
    return data


def main(argv: list[str] | None = None) -> None:
    run_info = Provenance.begin("benchmarks/index_switch.py", argv)
    args = parse_args(argv)
    out = output_path(args)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    say(f"index switch benchmark, N={args.items:,}: {run_info.command}")
    args.cache.mkdir(parents=True, exist_ok=True)
    data = dataset(args.items, args.seed, args.bundle, args.cache)
    with tempfile.TemporaryDirectory(prefix="index-switch-") as tmp:
        run = measure(args, data, Path(tmp))
    body = report(run, args.span, args.window)
    extra = [args.note] if args.note else []
    text = run_info.document(f"Latency while the index switches, {run.items:,} items", body, extra)
    print(text, end="")
    if out is not None:
        written = run_info.write(out, text, raw(run))
        say("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
