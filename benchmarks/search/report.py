"""item_search's report: the markdown tables, the targets as measured ratios with PASS/MISS,
the recall/speed figure and the JSON of every figure.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import onnxruntime as ort

from benchmarks.search.data import MAX_SHIFT, NOISE_SIGMA, QUERIES, TIE_EPS, Data
from benchmarks.search.index_study import (
    AUTO_THRESHOLD,
    BUDGET,
    BUILD_COLUMNS,
    OMP_NOTE,
    QUICK_BUDGET,
    SEARCH_COLUMNS,
    IndexStudy,
    SearchRow,
    equal_recall,
)
from benchmarks.search.server import WRK_COLUMNS
from benchmarks.search.server_run import POST_BATCH, ServerResults
from harness.results import Provenance, md_table, verdict
from service.items.live_index import EXACT_FILTER_MIN, EXACT_FILTER_SHARE
from service.items.merge_worker import DELTA_SHARE, MIN_DELTA

TARGET_RECALL, TARGET_SPEEDUP = 0.99, 100.0
TARGET_P99_MS, TARGET_IMPORT_SHARE = 10.0, 0.8
TARGET_FILTERED_P99_MS = 20.0  # issue 22: a 10 % label and a 1 % metadata filter at 1M
TARGET_WRITE_SLOWDOWN, TARGET_READY_S = 2.0, 30.0


def targets(
    n: int,
    rows: list[SearchRow],
    server: ServerResults | None,
    imported: dict[str, Any] | None,
) -> list[str]:
    lines = ["| target | measured | target | verdict | note |", "|---|---|---|---|---|"]
    if rows:
        approx = [r for r in rows if r.kind != "flat"]
        good = [r for r in approx if r.per_filter["none"]["recall"] >= TARGET_RECALL]
        both = [r for r in good if r.speedup >= TARGET_SPEEDUP]
        if both:
            best = max(both, key=lambda r: r.speedup)
            note = "meeting both: " + ", ".join(f"{r.kind} {r.setting}" for r in both)
        elif good:
            best = max(good, key=lambda r: r.speedup)
            note = f"recall >= {TARGET_RECALL} only below {TARGET_SPEEDUP:g}x"
        else:
            best = max(approx, key=lambda r: r.per_filter["none"]["recall"])
            note = f"no approximate setting reaches recall {TARGET_RECALL}"
        lines.append(
            f"| approximate recall@10 at >= {TARGET_SPEEDUP:g}x flat's one-by-one q/s, "
            f"N={n:,} | {best.kind} {best.setting}: recall "
            f"{best.per_filter['none']['recall']:.4f} at {best.speedup:,.1f}x | recall >= "
            f"{TARGET_RECALL}, >= {TARGET_SPEEDUP:g}x | {verdict(bool(both))} | {note} |"
        )
        for name in ("label (10 %)", "bucket (1 %)"):
            service_kind = "hnsw (LiveIndex)" if n >= AUTO_THRESHOLD else "flat"
            service = next((r for r in rows if r.kind == service_kind), None)
            passing = [
                f"{r.kind} {r.setting}"
                for r in rows
                if r.per_filter[name]["recall"] >= TARGET_RECALL
            ]
            if service is not None:
                recall = service.per_filter[name]["recall"]
                lines.append(
                    f"| filtered recall@10, {name}, in process, as the service searches at N "
                    f"({service.kind} {service.setting}) | {recall:.4f} | >= "
                    f"{TARGET_RECALL} | {verdict(recall >= TARGET_RECALL)} | settings that "
                    f"pass: {', '.join(passing) or 'none'} |"
                )
    if server is not None:
        for name in ("label (10 %)", "bucket (1 %)"):
            recall = server.recall[name]
            lines.append(
                f"| filtered recall@10, {name}, through the server (GET/POST /neighbors, "
                f"hnsw) | {recall:.4f} | >= {TARGET_RECALL} | "
                f"{verdict(recall >= TARGET_RECALL)} | the service answers exactly when a "
                f"filter allows <= max({EXACT_FILTER_MIN:,}, {EXACT_FILTER_SHARE:.0%} of main) |"
            )
        for plain in (c for c in server.cells if c.what == "GET /neighbors" and c.connections == 1):
            lines.append(
                f"| GET /neighbors p99, concurrency 1, no filter, N={n:,}, {plain.index} | "
                f"{plain.p99_ms:.1f} ms | <= {TARGET_P99_MS:g} ms | "
                f"{verdict(plain.p99_ms <= TARGET_P99_MS)} | p50 {plain.p50_ms:.1f} ms |"
            )
        filtered = [c for c in server.cells if "%)" in c.what and c.connections == 1]
        for cell in filtered:
            lines.append(
                f"| filtered {cell.what} p99, concurrency 1, N={n:,}, {cell.index} | "
                f"{cell.p99_ms:.1f} ms | <= {TARGET_FILTERED_P99_MS:g} ms | "
                f"{verdict(cell.p99_ms <= TARGET_FILTERED_P99_MS)} | p50 {cell.p50_ms:.1f} ms |"
            )
        writes = [c for c in server.cells if c.what.startswith("POST /items")]
        base = writes[0]
        for during in writes[1:]:
            ratio = during.p99_ms / base.p99_ms if base.p99_ms else float("inf")
            lines.append(
                f"| POST /items p99, {during.note} / no job | {during.p99_ms:.1f} / "
                f"{base.p99_ms:.1f} ms = {ratio:.2f}x | <= {TARGET_WRITE_SLOWDOWN:g}x | "
                f"{verdict(ratio <= TARGET_WRITE_SLOWDOWN)} | |"
            )
        for ready in server.ready:
            if ready["setting"] in ("hnsw", "auto"):
                ok = ready["seconds"] <= TARGET_READY_S
                lines.append(
                    f"| process start to /readyz 200, {ready['setting']}: {ready['when']} | "
                    f"{ready['seconds']:.1f} s | <= {TARGET_READY_S:g} s | {verdict(ok)} | "
                    f"{ready['index']}, main {ready['main']:,}, delta {ready['delta']:,} |"
                )
    if imported is not None:
        share = imported["share"]
        lines.append(
            f"| corel-import items/s (process start to exit) / raw onnxruntime items/s, "
            f"{imported['rows']:,} images | "
            f"{imported['rows'] / imported['wall_s']:,.0f} / {imported['raw_best']:,.0f} = "
            f"{share:.2f} | >= "
            f"{TARGET_IMPORT_SHARE:g} | {verdict(share >= TARGET_IMPORT_SHARE)} | |"
        )
    return lines


def plot(rows: list[SearchRow], path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for ax, name in zip(axes, ("none", "label (10 %)", "bucket (1 %)"), strict=True):
        for kind, marker in (("flat", "s"), ("hnsw", "o"), ("ivf", "^"), ("ivf-classes", "v")):
            mine = [r for r in rows if r.kind == kind]
            ax.plot(
                [r.per_filter[name]["single"] for r in mine],
                [r.per_filter[name]["recall"] for r in mine],
                marker=marker,
                label=kind,
            )
        ax.axhline(TARGET_RECALL, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("queries/s, one by one")
        ax.set_title(f"filter: {name}")
    axes[0].set_ylabel("recall@10")
    axes[0].legend()
    fig.suptitle(f"Fashion-MNIST embeddings, N = {n:,}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(
    run: Provenance,
    args: argparse.Namespace,
    data: Data,
    study: IndexStudy,
    server: ServerResults | None,
    imported: dict[str, Any] | None,
) -> str:
    """The results file's text: the header (where it came from), then every table."""
    builds, rows, shares, omp_rows = study.builds, study.rows, study.shares, study.omp_rows
    n = len(data.vectors)
    e = data.embedding
    lines = [
        "## Data",
        "",
        f"{n:,} items: the embeddings of {min(n, 69_000):,} Fashion-MNIST images (all but "
        f"{QUERIES:,} held-out test images), then seeded variants of them (shifts up to "
        f"{MAX_SHIFT} px, left-right flips, Gaussian pixel noise sigma {NOISE_SIGMA:g}). Queries: "
        f"one variant of each held-out image ({QUERIES:,}), not in the index. Embedding: "
        f"{e['onnxruntime_items_per_s']:,} items/s in onnxruntime ({e['session']}), "
        f"{e['items_per_s_with_augmentation']:,} items/s with the augmentation, "
        f"{e['seconds']:,} s for {e['items']:,} items on {e['date']} at load {e['load']:.2f}"
        + (" (cached from that run)" if e["cached"] else "")
        + ". Filters: `label` is a random class per query (mean share "
        f"{shares.get('label (10 %)', 0.1):.1%}, the hard case: mostly another class than "
        f"the query's own), `bucket` a random metadata bucket per query (share "
        f"{shares.get('bucket (1 %)', 0.01):.1%}).",
        "",
    ]
    if builds:
        lines += [
            "## Index kinds in process",
            "",
            *md_table(BUILD_COLUMNS, [b.cells(n) for b in builds]),
            "",
            *md_table(SEARCH_COLUMNS, [r.cells() for r in rows]),
            "",
            f"recall@10 against numpy brute force over the same unit vectors (a hit within "
            f"{TIE_EPS:g} of the k-th best score counts). Rows named by a kind search the "
            "FAISS index itself (`ItemIndex.search`, a filter as `allowed=`, which builds an "
            "IDSelectorBatch per call); `(LiveIndex)` rows search as the service does "
            "(`LiveIndex.search` on the same index's snapshot: a filter allowing at most "
            f"max({EXACT_FILTER_MIN:,}, {EXACT_FILTER_SHARE:.0%} of main) is answered exactly, "
            "a wider one on an approximate index over-fetches unfiltered hits). One by one: "
            "one call per query, until "
            f"{QUICK_BUDGET if args.quick else BUDGET:g} s are spent; batched: one call "
            "for all 1,000 queries, "
            "or one per filter value. Memory: snapshot bytes (what `items.index` holds) and "
            "the growth of this process's anonymous RSS over the build.",
            "",
            f"{OMP_NOTE}.",
            "",
            "| kind | setting | q/s 1 by 1, all OpenMP threads | q/s 1 by 1, one thread | load |",
            "|---|---|---|---|---|",
            *(
                f"| {o['kind']} | {o['setting']} | {o['qps_all_threads']:,.0f} "
                f"({o['threads']} threads) | {o['qps_one_thread']:,.0f} | {o['load']:.2f} |"
                for o in omp_rows
            ),
            "",
            "### ivf-classes (class vectors as coarse centroids) against k-means IVF",
            "",
            "| ivf-classes | recall@10 | q/s 1 by 1 | k-means IVF at >= that recall | recall@10 "
            "| q/s 1 by 1 | faster |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {c['classes']} | {c['classes_recall']:.4f} | {c['classes_qps']:,.0f} | "
                f"{c['kmeans']} | {c['kmeans_recall']:.4f} | {c['kmeans_qps']:,.0f} | "
                f"{c['winner']} |"
                for c in equal_recall(rows)
            ),
            "",
        ]
    if server is not None:
        b = server.build
        lines += [
            "## Through the server",
            "",
            "Data directory built offline with the service's classes "
            f"({'cached from ' + b['date'] if b.get('cached') else 'this run'}): "
            f"ItemStore.insert {b['insert_items_per_s']:,} items/s ({b['insert_s']:,} s), "
            f"LiveIndex open (catch-up of every item into the delta) {b['open_s']:,} s, "
            f"flush to {b['kind']} {b['flush_s']:,} s; SQLite {b['sqlite_bytes'] / 2**20:,.0f} "
            f"MiB, snapshot {b['snapshot_bytes'] / 2**20:,.0f} MiB.",
            "",
            "| setting | when | process start to /readyz 200 s | index then | main | delta "
            "| load |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {r['setting']} | {r['when']} | {r['seconds']:.1f} | {r['index']} | "
                f"{r['main']:,} | {r['delta']:,} | {r['load']:.2f} |"
                for r in server.ready
            ),
            "",
            f"kill -9 during writes: {server.kill.get('acknowledged_batches', 0)} batches "
            f"acknowledged (201) before the kill, {server.kill.get('lost', 0)} of them missing "
            "after the restart.",
            "",
            "| filter | stored items asked | server recall@10 | mean ms (httpx, one by one) |",
            "|---|---|---|---|",
            *(
                f"| {name} | {server.recall[name + ' queries']:.0f} | {server.recall[name]:.4f} "
                f"| {server.recall[name + ' ms']:.1f} |"
                for name in ("none", "label (10 %)", "bucket (1 %)")
            ),
            "",
            *md_table(WRK_COLUMNS, [c.cells() for c in server.cells]),
            "",
            "wrk cycles through 1,000 random stored ids (`k=10`); label filters are a random "
            "class, bucket filters a random metadata bucket (POST /neighbors, since GET takes "
            f"only a label). POST /items: {POST_BATCH} new items per request, each a tensor "
            "input (28x28 uint8, base64), so every request also runs the encoder. Server: "
            "one `python -m service` process, COREL_PROVIDER=cpu, COREL_LOG_LEVEL=warning. "
            f"A merge starts when the delta passes max({MIN_DELTA:,}, {DELTA_SHARE:.0%} of "
            "main); the rebuild is the start with COREL_INDEX_KIND=ivf on the HNSW snapshot. "
            f"GET /items (which reports the job) took {server.jobs.get('get_items_s', 0):.2f} s.",
            "",
        ]
        lines += [f"- {note}" for note in server.notes]
    if imported is not None:
        raw = imported["raw"]
        lines += [
            "## Bulk import",
            "",
            "| measurement | items | seconds | items/s | server CPU % | client CPU % | load |",
            "|---|---|---|---|---|---|---|",
            f"| corel-import (2 requests of 1,024 in flight) into a fresh server (auto) | "
            f"{imported['rows']:,} | {imported['seconds']:.1f} | {imported['items_per_s']:,.0f} | "
            f"{imported['server_cpu']:.0f} | {imported['client_cpu']:.0f} | "
            f"{imported['load']:.2f} |",
            *(
                f"| raw onnxruntime, batch 1,024, {name} session options ({when}) | "
                f"{imported['rows']:,} | {imported['rows'] / r[name]:.1f} | {r[name]:,.0f} | - | - "
                "| - |"
                for when, r in zip(("before", "after"), raw, strict=True)
                for name in r
            ),
            "",
            f"corel-import's own line: `{imported['summary']}` (its seconds are used; the "
            f"process took {imported['wall_s']:.1f} s from start to exit). The index after: "
            f"{imported['index_after']}. CPU % is of one core over the process's run.",
            "",
        ]
    lines += [
        "## Targets",
        "",
        *targets(n, rows, server, imported),
    ]
    extra = [
        f"Versions: faiss {faiss.__version__}, onnxruntime {ort.__version__}",
        "**Shared machine**: other work ran beside this benchmark (see the load column of "
        "every row, the 1-minute load average when the row was measured). Absolute speeds "
        "are low and noisy; the ratios measured side by side are the figures to read.",
    ]
    if args.note:
        extra.append(f"Note: {args.note}")
    return run.document(f"Item search at {n:,} items", "\n".join(lines), extra)


def raw(
    data: Data, study: IndexStudy, server: ServerResults | None, imported: Any
) -> dict[str, Any]:
    """Every figure of the report, for the JSON beside it."""
    return {
        "items": len(data.vectors),
        "embedding": data.embedding,
        "builds": [asdict(b) for b in study.builds],
        "searches": [asdict(r) for r in study.rows],
        "filter_shares": study.shares,
        "openmp": study.omp_rows,
        "equal_recall": equal_recall(study.rows) if study.rows else [],
        "server": asdict(server) if server else None,
        "import": imported,
    }
