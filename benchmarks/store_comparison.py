"""The two item stores side by side on the same N items (default 1,000,000): issue 12's targets.

In one run on one machine, with the same items, the same stored ids asked and the same wrk
scripts for both stores (all of it from item_search's parts, benchmarks/search/, which this
only drives):

1. Data: item_search's N Fashion-MNIST embeddings (real images, then seeded variants;
   cached under benchmarks/.cache/item_search/, shared with item_search).
2. embedded: the server (`python -m service`, COREL_INDEX_KIND=hnsw) on item_search's
   offline-built data directory (ItemStore.insert, HNSW snapshot; cached too).
3. milvus: a Milvus standalone server (`milvus-server`, harness/milvus.py), into which
   the same N precomputed embeddings are inserted directly through the service's own
   MilvusItems (its collection schema, HNSW M 16 / efConstruction 200 COSINE index, and row
   format; pymilvus `insert` in batches, then `flush` and a wait until the index covers
   every row), then the server with COREL_STORE=milvus on that collection.
4. For each server: recall@10 of GET /neighbors?id= for the same stored items against exact
   search (numpy brute force), GET /neighbors latency at concurrency 1 and 8 (Debian's
   `wrk`, the same 1,000 stored ids in turn).
5. Bulk import: `corel-import` of Fashion-MNIST train images into a fresh server of each
   store, each between two raw onnxruntime runs on the same images (item_search's
   measurement; the milvus one into its own collection prefix of the same Milvus server,
   before the N items are loaded, so that Milvus's index building does not share the
   cores with it).

Prints markdown tables, the targets (milvus recall@10 >= 0.98; milvus /neighbors p99 <= 2x
embedded's; milvus bulk import >= 0.8x raw onnxruntime) with PASS/MISS, and the command
that reproduces them; progress goes to stderr. The Milvus server uses fixed ports (19530,
2379, 9091): one per machine, so wrap the command in `flock /tmp/milvus.lock` where others
start one too.

    python benchmarks/store_comparison.py                          # N = 1,000,000
    python benchmarks/store_comparison.py --items 20000 --quick    # smoke test, not saved
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from benchmarks.search import options  # noqa: E402
from benchmarks.search.bulk_import import QUICK_IMPORT_ROWS, bulk_import  # noqa: E402
from benchmarks.search.data import Data, dataset  # noqa: E402
from benchmarks.search.server import (  # noqa: E402
    QUICK_SERVER_QUERIES,
    SERVER_QUERIES,
    WRK_COLUMNS,
    WrkCell,
    neighbour_scripts,
    new_item,
    pristine_data_dir,
    run_wrk,
    server_recall,
    start_server,
)
from corel.bundle import ENCODER_FILE, load_bundle  # noqa: E402
from corel.class_rule import l2_normalise  # noqa: E402
from harness import RESULTS  # noqa: E402
from harness.milvus import MilvusServer, start_milvus  # noqa: E402
from harness.progress import every, load1, say  # noqa: E402
from harness.results import Provenance, md_table, output_path, verdict  # noqa: E402
from harness.server import LocalServer  # noqa: E402
from service.items.milvus import MilvusItems  # noqa: E402
from service.items.types import SearchOptions  # noqa: E402
from service.milvus import connect  # noqa: E402

DEFAULT_OUT = RESULTS / "store_comparison.md"
TARGET_RECALL, TARGET_P99_RATIO, TARGET_IMPORT_SHARE = 0.98, 2.0, 0.8
INSERT_BATCH = 10_000  # rows per pymilvus insert while loading the N items
PREFIX, IMPORT_PREFIX = "bench", "benchimport"  # Milvus collection prefixes
CONNECTIONS = (1, 8)
# The filtered requests at concurrency 1, by the neighbour script they send (item_search's)
FILTERED = {"GET /neighbors label (10 %)": "label", "POST /neighbors bucket (1 %)": "bucket"}
TARGET_FILTERED_RATIO = 3.0  # milvus's filtered p99 at most this times the embedded store's


@dataclass
class StoreRun:
    """One store's figures, measured through its server."""

    store: str
    setting: str
    load: dict[str, Any] = field(default_factory=dict)  # how the N items got there
    ready_s: float = 0.0
    recall: dict[str, float] = field(default_factory=dict)
    cells: list[WrkCell] = field(default_factory=list)
    milvus_cpu: list[float] = field(default_factory=list)  # % of one core, per wrk cell
    imported: dict[str, Any] | None = None
    direct: dict[str, dict[str, float]] = field(default_factory=dict)  # milvus: no HTTP

    def cell(self, connections: int, what: str = "GET /neighbors") -> WrkCell:
        return next(c for c in self.cells if c.connections == connections and c.what == what)


def measure_server(
    run: StoreRun,
    data: Data,
    unit: np.ndarray,
    server: LocalServer,
    args: argparse.Namespace,
    work: Path,
    milvus: MilvusServer | None = None,
) -> None:
    """recall@10 of GET /neighbors, then wrk at each concurrency, on a ready server."""
    count = min(QUICK_SERVER_QUERIES if args.quick else SERVER_QUERIES, len(unit))
    with server.client() as client:
        budget = 10 if args.quick else 600
        run.recall = server_recall(client, data, unit, count, args.seed, budget, filters=("none",))
    scripts = neighbour_scripts(data, args.seed)
    seconds = 1 if args.quick else 10
    # milvus-server's launcher, with etcd and Milvus under it
    launcher = milvus.process.pid if milvus is not None and milvus.process is not None else None
    cells = [WrkCell("GET /neighbors", run.setting, c) for c in CONNECTIONS]
    cells += [WrkCell(what, run.setting, 1) for what in FILTERED]
    for cell in cells:
        script = scripts[FILTERED.get(cell.what, "none")]
        run.cells.append(run_wrk(server, script, cell, seconds, work, {"milvus": launcher}))
        if "milvus" in cell.extra_cpu:
            run.milvus_cpu.append(cell.extra_cpu["milvus"])
            cell.note = f"Milvus CPU {cell.extra_cpu['milvus']:.0f} %"


def embedded_run(data: Data, unit: np.ndarray, args: argparse.Namespace, work: Path) -> StoreRun:
    run = StoreRun("embedded", "embedded, hnsw")
    pristine, built = pristine_data_dir(data, args.bundle, args.seed, args.cache)
    run.load = {
        "how": "ItemStore.insert, then a LiveIndex flushed to an HNSW snapshot (item_search)",
        **built,
    }
    data_dir = work / "embedded-data"
    say("embedded: copying the pristine data directory")
    shutil.copytree(pristine, data_dir, ignore=shutil.ignore_patterns("built.json"))
    server, run.ready_s = start_server(args.bundle, data_dir, "hnsw", work / "server-embedded.log")
    try:
        measure_server(run, data, unit, server, args, work)
    finally:
        server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    return run


def load_milvus(data: Data, bundle: Path, uri: str, prefix: str) -> dict[str, Any]:
    """The N items into the current model's collection, as the service would store them
    (MilvusItems' schema, index and rows), then flushed and indexed; what it took."""
    manifest = load_bundle(bundle).manifest
    items = MilvusItems(
        connect(uri, timeout=600),
        prefix=prefix,
        model_id=manifest.files[ENCODER_FILE],
        dim=manifest.embedding_dim,
        kind="hnsw",
    )
    client, collection = items.client, items.collection
    try:
        items._create()
        n = len(data.vectors)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        report = every(20, "milvus: insert")
        started = time.perf_counter()
        for start in range(0, n, INSERT_BATCH):
            rows = [
                items._row(new_item(data, i), now)
                for i in range(start, min(n, start + INSERT_BATCH))
            ]
            client.insert(collection, rows)
            report(min(n, start + INSERT_BATCH), n)
        insert_s = time.perf_counter() - started
        t = time.perf_counter()
        client.flush(collection)
        flush_s = time.perf_counter() - t
        say(f"milvus: inserted {n:,} in {insert_s:.0f} s, flushed in {flush_s:.0f} s")
        t = time.perf_counter()
        state: dict[str, Any] = {}
        last = 0.0
        while True:
            state = client.describe_index(collection, "vector")
            indexed, pending = int(state.get("indexed_rows", 0)), state.get("pending_index_rows")
            if indexed >= n and not pending:
                break
            if time.perf_counter() - last >= 20:
                last = time.perf_counter()
                say(f"milvus: index built over {indexed:,} of {n:,} rows ({state.get('state')})")
            if time.perf_counter() - t > 7200:
                raise SystemExit(f"milvus: the index was not built within 2 h: {state}")
            time.sleep(2)
        index_s = time.perf_counter() - t
        rows = client.query(
            collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        stored = int(rows[0]["count(*)"])
        if stored != n:
            raise SystemExit(f"milvus: {stored:,} rows stored, not {n:,}")
        say(f"milvus: index over every row after {index_s:.0f} s more")
    finally:
        client.close()
    return {
        "how": "pymilvus insert of the precomputed embeddings through MilvusItems' schema and "
        f"rows ({INSERT_BATCH:,} per call), flush, wait until the index covers every row",
        "items": n,
        "insert_s": round(insert_s, 1),
        "insert_items_per_s": round(n / insert_s),
        "flush_s": round(flush_s, 1),
        "index_s": round(index_s, 1),
        "index": {k: v for k, v in state.items() if k != "field_name"},
    }


def milvus_run(
    data: Data, unit: np.ndarray, args: argparse.Namespace, work: Path, import_rows: int
) -> StoreRun:
    run = StoreRun("milvus", "milvus, hnsw")
    milvus = start_milvus_or_say_why(work / "milvus")
    try:
        env = {"COREL_STORE": "milvus", "COREL_MILVUS_URI": milvus.uri}
        if "import" not in args.skip:
            run.imported = bulk_import(
                args.bundle,
                import_rows,
                work,
                {**env, "COREL_MILVUS_PREFIX": IMPORT_PREFIX},
                "milvus-import",
            )
        run.load = load_milvus(data, args.bundle, milvus.uri, PREFIX)
        server, run.ready_s = start_server(
            args.bundle,
            work / "milvus-service-data",
            "hnsw",
            work / "server-milvus.log",
            {**env, "COREL_MILVUS_PREFIX": PREFIX},
        )
        try:
            measure_server(run, data, unit, server, args, work, milvus)
        finally:
            server.stop()
        try:  # an explanation beside the figures: never the reason a run is lost
            run.direct = direct_calls(data, args, milvus.uri)
        except Exception as exc:
            say(f"milvus, in process: not measured ({exc!r})")
    finally:
        milvus.stop()
    return run


def start_milvus_or_say_why(folder: Path, tries: int = 2) -> MilvusServer:
    """start_milvus, tried again once; on failure the end of the server's log goes to
    stderr (the folder is deleted with the run's temporary directory)."""
    for attempt in range(1, tries + 1):
        say(f"milvus: starting milvus-server (try {attempt})")
        try:
            return start_milvus(folder / f"try{attempt}", timeout=600)
        except RuntimeError as exc:
            log = folder / f"try{attempt}" / "milvus-server.log"
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
            say(f"milvus: {exc}; the end of its log:\n{tail}")
    raise SystemExit("milvus-server did not start")


def direct_calls(data: Data, args: argparse.Namespace, uri: str) -> dict[str, dict[str, float]]:
    """Where a milvus GET /neighbors spends its time: the service's two Milvus calls made
    one after another from this process with the service's own code (MilvusItems: the
    lookup of the stored item by id, then the search), without HTTP; ms p50 / p99."""
    manifest = load_bundle(args.bundle).manifest
    items = MilvusItems(
        connect(uri),
        prefix=PREFIX,
        model_id=manifest.files[ENCODER_FILE],
        dim=manifest.embedding_dim,
        kind="hnsw",
    )
    items._create()
    items._ready.set()  # the collection is loaded: no watcher needed here
    rng = np.random.default_rng([args.seed, 79])
    rows = rng.choice(len(data.vectors), 100 if args.quick else 500, replace=False)
    options = SearchOptions(k=10)
    calls = {
        "lookup by id (MilvusItems._get)": lambda r: items._get(f"fm-{r}"),
        "lookup and search (MilvusItems._neighbours)": lambda r: items._neighbours(
            [f"fm-{r}"], options
        ),
    }
    out = {}
    try:
        for name, call in calls.items():
            times = []
            for r in rows:
                t = time.perf_counter()
                call(int(r))
                times.append(1000 * (time.perf_counter() - t))
            out[name] = {
                "calls": len(times),
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "load": load1(),
            }
            say(
                f"milvus, in process: {name} p50 {out[name]['p50_ms']:.1f} ms, "
                f"p99 {out[name]['p99_ms']:.1f} ms"
            )
    finally:
        items.client.close()
    return out


# -- the report -------------------------------------------------------------------------------


def import_cells(imported: dict[str, Any] | None) -> str:
    if imported is None:
        return "not measured"
    wall_rate = imported["rows"] / imported["wall_s"]
    return (
        f"{wall_rate:,.0f} / {imported['raw_best']:,.0f} items/s = {imported['share']:.2f}x "
        f"({imported['rows']:,} images)"
    )


def report(run: Provenance, args: argparse.Namespace, data: Data, runs: list[StoreRun]) -> str:
    """The results file's text: the header (where it came from), then the tables."""
    n = len(data.vectors)
    by = {r.store: r for r in runs}
    e = data.embedding
    lines = [
        f"{n:,} items: item_search's Fashion-MNIST embeddings (the images, then seeded "
        f"variants; {e['onnxruntime_items_per_s']:,} items/s in onnxruntime on {e['date']}"
        + (", cached" if e["cached"] else "")
        + "). The same stored items are asked for their neighbours on both servers, and wrk "
        "sends both the same 1,000 `GET /neighbors?id=...&k=10` requests in turn.",
        "",
        "| | " + " | ".join(r.setting for r in runs) + " |",
        "|---|" + "---|" * len(runs),
        "| how the items got there | "
        + " | ".join(
            f"{r.load['how']}: {r.load['insert_items_per_s']:,} items/s inserting"
            + (f", index {r.load['index_s']:,} s" if "index_s" in r.load else "")
            + (f", flush ({r.load['kind']}) {r.load['flush_s']:,} s" if "kind" in r.load else "")
            + (" (cached)" if r.load.get("cached") else "")
            for r in runs
        )
        + " |",
        "| process start to /readyz 200 | " + " | ".join(f"{r.ready_s:.1f} s" for r in runs) + " |",
        "| recall@10 of GET /neighbors against exact search | "
        + " | ".join(
            f"{r.recall['none']:.4f} ({r.recall['none queries']:.0f} stored items)" for r in runs
        )
        + " |",
        *(
            f"| GET /neighbors, concurrency {c}: p50 / p99 ms, requests/s | "
            + " | ".join(
                f"{r.cell(c).p50_ms:.1f} / {r.cell(c).p99_ms:.1f}, "
                f"{r.cell(c).requests / r.cell(c).seconds:,.0f}"
                for r in runs
            )
            + " |"
            for c in CONNECTIONS
        ),
        "| bulk import: corel-import items/s / raw onnxruntime items/s | "
        + " | ".join(import_cells(r.imported) for r in runs)
        + " |",
        "",
        *md_table(WRK_COLUMNS, [c.cells() for r in runs for c in r.cells]),
        "",
        "wrk: "
        + ("1 s" if args.quick else "10 s")
        + " per cell, 2 threads (1 at concurrency 1); server CPU % is the service process's "
        "(of one core), Milvus's (every process of milvus-server) is in the note.",
        "",
    ]
    for r in runs:
        if r.direct:
            lines += [
                f"Where {r.setting}'s GET /neighbors time goes: the service's own Milvus calls "
                "made one after another in the benchmark's process (no HTTP, no service), on "
                "the same collection after the wrk runs:",
                "",
                "| call | calls | p50 ms | p99 ms | load |",
                "|---|---|---|---|---|",
                *(
                    f"| {name} | {d['calls']:.0f} | {d['p50_ms']:.1f} | {d['p99_ms']:.1f} | "
                    f"{d['load']:.2f} |"
                    for name, d in r.direct.items()
                ),
                "",
            ]
    imports = [r for r in runs if r.imported is not None]
    if imports:
        lines += [
            "| bulk import into | images | corel-import's own s | wall s | items/s (wall) | "
            "raw onnxruntime before / after, items/s | server CPU % | load |",
            "|---|---|---|---|---|---|---|---|",
            *(
                f"| {r.setting} | {i['rows']:,} | {i['seconds']:.1f} | {i['wall_s']:.1f} | "
                f"{i['rows'] / i['wall_s']:,.0f} | "
                + " / ".join(f"{max(raw.values()):,.0f}" for raw in i["raw"])
                + f" | {i['server_cpu']:.0f} | {i['load']:.2f} |"
                for r in imports
                if (i := r.imported) is not None
            ),
            "",
            "The ratio is items/s over corel-import's whole run (process start to exit) against "
            "the faster raw onnxruntime run (batch 1,024, default or the server's session "
            "options), as in item_",
            "",
        ]
    lines += ["## Targets", "", "| target | measured | target | verdict |", "|---|---|---|---|"]
    milvus, embedded = by.get("milvus"), by.get("embedded")
    if milvus is not None:
        recall = milvus.recall["none"]
        lines.append(
            f"| milvus recall@10, GET /neighbors, N={n:,} | {recall:.4f} | >= {TARGET_RECALL} | "
            f"{verdict(recall >= TARGET_RECALL)} |"
        )
    if milvus is not None and embedded is not None:
        for c in CONNECTIONS:
            mine, theirs = milvus.cell(c).p99_ms, embedded.cell(c).p99_ms
            ratio = mine / theirs if theirs else float("inf")
            lines.append(
                f"| milvus / embedded GET /neighbors p99, concurrency {c} | {mine:.1f} / "
                f"{theirs:.1f} ms = {ratio:.2f}x | <= {TARGET_P99_RATIO:g}x | "
                f"{verdict(ratio <= TARGET_P99_RATIO)} |"
            )
        for what in FILTERED:
            mine, theirs = milvus.cell(1, what).p99_ms, embedded.cell(1, what).p99_ms
            ratio = mine / theirs if theirs else float("inf")
            lines.append(
                f"| milvus / embedded {what} p99, concurrency 1 | {mine:.1f} / {theirs:.1f} ms"
                f" = {ratio:.2f}x | <= {TARGET_FILTERED_RATIO:g}x | "
                f"{verdict(ratio <= TARGET_FILTERED_RATIO)} |"
            )
    if milvus is not None and milvus.imported is not None:
        share = milvus.imported["share"]
        lines.append(
            f"| milvus bulk import / raw onnxruntime | {import_cells(milvus.imported)} | >= "
            f"{TARGET_IMPORT_SHARE:g}x | {verdict(share >= TARGET_IMPORT_SHARE)} |"
        )
    extra = [f"Note: {args.note}"] if args.note else []
    return run.document(f"The embedded and milvus stores at {n:,} items", "\n".join(lines), extra)


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/store_comparison.py", argv)
    parser = options.parser(
        __doc__,
        out=DEFAULT_OUT,
        beside=", with .json beside it",
        quick=f"smoke test: 1 s wrk runs, {QUICK_SERVER_QUERIES} stored items asked, a "
        f"{QUICK_IMPORT_ROWS:,}-image import",
        skip=["embedded", "milvus", "import"],
        skip_help="leave out a store or the bulk imports (repeatable)",
    )
    args = options.parse(parser, argv)
    import_rows = args.import_rows
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    # SIGTERM ends the run like Ctrl-C: servers and Milvus are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = output_path(args)
    say(f"store comparison, N={args.items:,}: {provenance.command}")
    args.cache.mkdir(parents=True, exist_ok=True)
    data = dataset(args.items, args.seed, args.bundle, args.cache)
    unit = l2_normalise(data.vectors)
    runs: list[StoreRun] = []
    with tempfile.TemporaryDirectory(dir=args.cache, prefix="stores-") as tmp:
        work = Path(tmp)
        if "embedded" not in args.skip:
            run = embedded_run(data, unit, args, work)
            if "import" not in args.skip:
                run.imported = bulk_import(args.bundle, import_rows, work, None, "embedded-import")
            runs.append(run)
        if "milvus" not in args.skip:
            runs.append(milvus_run(data, unit, args, work, import_rows))
    text = report(provenance, args, data, runs)
    print(text, end="")
    if out is not None:
        raw = {
            "items": len(data.vectors),
            "embedding": data.embedding,
            "runs": [asdict(r) for r in runs],
        }
        written = provenance.write(out, text, raw)
        say("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
