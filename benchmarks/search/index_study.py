"""Each index kind in process on the same N items: flat (exact), hnsw, ivf (k-means coarse
centroids, as the service builds them) and ivf-classes (an IVF index whose coarse centroids
are the model's class vectors, no training).

Per kind: build time, memory per item (snapshot bytes and anonymous RSS growth), recall@10
against exact search, queries/s one query at a time and 1,000 at once, and the same with an
`allowed` filter of 10 % (a label, drawn at random per query) and of 1 % (a metadata-like
bucket, random per query); efSearch and nprobe are swept to show the recall/speed trade-off.
hnsw and ivf are measured again as the service searches them (a LiveIndex on the snapshot).
"""

from __future__ import annotations

import gc
import inspect
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.search.data import TIE_EPS, Data, K, exact_topk
from corel.class_rule import l2_normalise
from harness.progress import every, load1, say
from service.items.index import BUILD_CHUNK, HNSW_EF_CONSTRUCTION, HNSW_M, ItemIndex
from service.items.live_index import LiveIndex
from service.items.types import IndexKind
from service.settings import Settings

HNSW_EF, QUICK_HNSW_EF = (32, 64, 128, 256, 512), (64, 128)
IVF_NPROBE, QUICK_IVF_NPROBE = (4, 8, 16, 32, 64, 128), (8, 32)
CLASS_NPROBE, QUICK_CLASS_NPROBE = (1, 2, 3, 5), (1, 3)
_DEFAULTS = inspect.signature(ItemIndex.__init__).parameters
SERVICE_EF, SERVICE_NPROBE = _DEFAULTS["ef_search"].default, _DEFAULTS["nprobe"].default
AUTO_THRESHOLD = Settings.model_fields["index_auto_threshold"].default
SNAPSHOT_MODEL = "item-search-benchmark"  # the model id in in-process snapshots
BUDGET, QUICK_BUDGET = 5.0, 0.3  # seconds of one-by-one queries per measurement
CORES = os.cpu_count() or 1
OMP_NOTE = (
    "FAISS parallelises a search with OpenMP even for one query; on a busy machine each "
    "call then waits for a second thread to be scheduled, so one-by-one searches here run "
    "on one OpenMP thread (the table 'OpenMP threads for one query' shows the difference)"
)


@dataclass
class Filter:
    """A query set's filter: which items each query may find, and the exact answer."""

    name: str
    share: float  # mean share of the items a query may find
    groups: list[tuple[np.ndarray, np.ndarray | None]]  # (query numbers, allowed seqs)
    allowed: list[np.ndarray | None]  # per query: allowed seqs (None: all)
    field: np.ndarray | None  # (N,) each item's value of the filtered field
    wanted: np.ndarray | None  # (Q,) the value each query asks for
    kth: np.ndarray  # (Q,) the exact k-th best admissible score


def make_filters(data: Data, unit: np.ndarray, unit_q: np.ndarray) -> list[Filter]:
    n, q = len(unit), len(unit_q)
    scores, _ = exact_topk(unit, unit_q, K)
    filters = [Filter("none", 1.0, [(np.arange(q), None)], [None] * q, None, None, scores[:, -1])]
    for name, values, wanted in (
        ("label (10 %)", data.labels, data.query_label),
        ("bucket (1 %)", data.buckets, data.query_bucket),
    ):
        groups: list[tuple[np.ndarray, np.ndarray | None]] = []
        allowed: list[np.ndarray | None] = [None] * q
        kth = np.zeros(q, np.float32)
        shares = []
        for value in np.unique(wanted):
            queries = np.flatnonzero(wanted == value)
            rows = np.flatnonzero(values == value)
            seqs = rows + 1
            groups.append((queries, seqs))
            for query in queries:
                allowed[query] = seqs
            kth[queries] = exact_topk(unit[rows], unit_q[queries], K)[0][:, -1]
            shares += [len(rows) / n] * len(queries)
        filters.append(Filter(name, float(np.mean(shares)), groups, allowed, values, wanted, kth))
    return filters


def recall_at_k(
    found: np.ndarray, unit: np.ndarray, unit_q: np.ndarray, filt: Filter
) -> float:  # found: (Q, K) seqs, -1 = none
    """Share of the exact top-k found: a returned item counts when it is admissible and
    scores at least the exact k-th best (less TIE_EPS), each item once."""
    hits = 0
    for q in range(len(found)):
        seqs = np.unique(found[q][found[q] >= 1])
        rows = seqs - 1
        if filt.field is not None and filt.wanted is not None:
            rows = rows[filt.field[rows] == filt.wanted[q]]
        sims = unit[rows] @ unit_q[q]
        hits += min(K, int((sims >= filt.kth[q] - TIE_EPS).sum()))
    return hits / (len(found) * K)


def rss_anon() -> int:
    """Anonymous resident bytes of this process (heap and anonymous maps, not file pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class BuildRow:
    kind: str
    structure: str
    build_s: float
    snapshot_bytes: int
    rss_bytes: int
    save_s: float
    load_s: float
    imbalance: float | None  # IVF: FAISS's imbalance factor of the list sizes (1 = even)
    load: float

    def cells(self, n: int) -> list[str]:
        return [
            self.kind,
            self.structure,
            f"{self.build_s:,.1f}",
            f"{self.snapshot_bytes / 2**20:,.0f}",
            f"{self.snapshot_bytes / n:,.0f}",
            f"{self.rss_bytes / n:,.0f}",
            f"{self.save_s:.1f}",
            f"{self.load_s:.1f}",
            "-" if self.imbalance is None else f"{self.imbalance:.2f}",
            f"{self.load:.2f}",
        ]


BUILD_COLUMNS = [
    "kind",
    "structure",
    "build s",
    "snapshot MiB",
    "snapshot bytes/item",
    "RSS growth bytes/item",
    "snapshot write s",
    "snapshot load s",
    "IVF list imbalance",
    "load",
]


@dataclass
class SearchRow:
    kind: str
    setting: str
    parameter: int | None
    per_filter: dict[str, dict[str, float]]  # filter -> recall, single q/s, batch q/s, agree
    speedup: float = 0.0  # single-query q/s over flat's (no filter)
    load: float = 0.0

    def cells(self) -> list[str]:
        out = [self.kind, self.setting]
        for name in ("none", "label (10 %)", "bucket (1 %)"):
            m = self.per_filter[name]
            out += [f"{m['recall']:.4f}", f"{m['single']:,.0f}", f"{m['batch']:,.0f}"]
            if name == "none":
                out.append(f"{self.speedup:,.1f}x")
        return [*out, f"{self.load:.2f}"]


SEARCH_COLUMNS = [
    "kind",
    "setting",
    "recall@10",
    "q/s 1 by 1",
    "q/s 1,000 at once",
    "x flat (1 by 1)",
    "recall@10 label 10 %",
    "q/s 1 by 1",
    "q/s batched",
    "recall@10 bucket 1 %",
    "q/s 1 by 1",
    "q/s batched",
    "load",
]


def build_index(kind: str, data: Data, class_vectors: np.ndarray) -> tuple[ItemIndex, str]:
    n, dim = data.vectors.shape
    seqs = np.arange(1, n + 1, dtype=np.int64)
    report = every(30, f"build {kind}")
    if kind != "ivf-classes":
        index = ItemIndex.build(
            dim,
            kind,  # type: ignore[arg-type]
            seqs,
            data.vectors,
            progress=report,
            use_gpu=False,
        )
        if kind == "hnsw":
            return index, f"HNSW M {HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION}"
        if kind == "ivf":
            return index, f"{index._index.nlist:,} lists, k-means"
        return index, "exact"
    centroids = np.ascontiguousarray(l2_normalise(class_vectors), np.float32)
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(centroids)
    raw = faiss.IndexIVFFlat(quantizer, dim, len(centroids), faiss.METRIC_INNER_PRODUCT)
    raw.is_trained = True  # the class vectors are the centroids: nothing to learn
    raw.set_direct_map_type(faiss.DirectMap.Hashtable)  # as the service's IVF (removals)
    index = ItemIndex(dim, kind="ivf", raw=raw, use_gpu=False)
    for start in range(0, n, BUILD_CHUNK):
        index.add(seqs[start : start + BUILD_CHUNK], data.vectors[start : start + BUILD_CHUNK])
        report(min(n, start + BUILD_CHUNK), n)
    return index, f"{len(centroids)} lists, the class vectors"


def measure_build(
    kind: str, data: Data, class_vectors: np.ndarray, path: Path
) -> tuple[ItemIndex, BuildRow]:
    """Build, then write the snapshot to `path` and read it back, timing each."""
    gc.collect()
    before = rss_anon()
    started = time.perf_counter()
    index, structure = build_index(kind, data, class_vectors)
    build_s = time.perf_counter() - started
    gc.collect()
    grown = rss_anon() - before
    t = time.perf_counter()
    index.save(path, model_id=SNAPSHOT_MODEL, watermark=len(data.vectors))
    save_s = time.perf_counter() - t
    size = path.stat().st_size
    t = time.perf_counter()
    loaded = ItemIndex.load(path, model_id=SNAPSHOT_MODEL, dim=index.dim, use_gpu=False)
    load_s = time.perf_counter() - t
    del loaded
    imbalance = float(index._index.invlists.imbalance_factor()) if index.kind == "ivf" else None
    row = BuildRow(kind, structure, build_s, size, grown, save_s, load_s, imbalance, load1())
    say(
        f"built {kind} in {build_s:.1f} s: {size / len(data.vectors):,.0f} bytes/item snapshot,"
        f" {grown / len(data.vectors):,.0f} bytes/item RSS"
    )
    return index, row


def measure_search(
    index: ItemIndex | LiveIndex,
    data: Data,
    unit: np.ndarray,
    unit_q: np.ndarray,
    filt: Filter,
    budget: float,
    least: int,
    single_threads: int = 1,
) -> dict[str, float]:
    """recall@K of all queries at once (one call per filter value), and q/s at once and
    one by one (each call builds its own selector, as the service does), the latter until
    `budget` seconds are spent (at least `least` queries). Batched calls use every core;
    one-by-one calls `single_threads` OpenMP threads (see OMP_NOTE)."""
    found = np.full((len(unit_q), K), -1, np.int64)
    started = time.perf_counter()
    for queries, allowed in filt.groups:
        _, seqs = index.search(data.queries[queries], K, allowed=allowed)
        found[queries] = seqs
    batch_s = time.perf_counter() - started
    recall = recall_at_k(found, unit, unit_q, filt)
    order = np.random.default_rng(0).permutation(len(unit_q))
    spent, done, agree = 0.0, 0, 0
    faiss.omp_set_num_threads(single_threads)
    for q in order:
        t = time.perf_counter()
        _, seqs = index.search(data.queries[q : q + 1], K, allowed=filt.allowed[q])
        spent += time.perf_counter() - t
        done += 1
        agree += set(seqs[0].tolist()) == set(found[q].tolist())
        if done >= least and spent >= budget:
            break
    faiss.omp_set_num_threads(CORES)
    return {
        "recall": recall,
        "single": done / spent,
        "batch": len(unit_q) / batch_s,
        "agree": agree / done,  # one-by-one answers equal to the batched ones
        "single_queries": done,
    }


@dataclass
class IndexStudy:
    """What `in_process` measured."""

    builds: list[BuildRow] = field(default_factory=list)
    rows: list[SearchRow] = field(default_factory=list)
    shares: dict[str, float] = field(default_factory=dict)  # filter -> mean share allowed
    omp_rows: list[dict[str, Any]] = field(default_factory=list)


def in_process(data: Data, class_vectors: np.ndarray, quick: bool, cache: Path) -> IndexStudy:
    """Every kind built, swept and searched in turn (snapshots in a folder under `cache`)."""
    unit = l2_normalise(data.vectors)
    unit_q = l2_normalise(data.queries)
    say("exact answers (numpy brute force) for every query and filter")
    filters = make_filters(data, unit, unit_q)
    study = IndexStudy(shares={f.name: f.share for f in filters})
    budget, least = (QUICK_BUDGET, 5) if quick else (BUDGET, 20)
    sweeps: dict[str, tuple[str, tuple[int, ...]]] = {
        "flat": ("", (0,)),
        "hnsw": ("efSearch", QUICK_HNSW_EF if quick else HNSW_EF),
        "ivf": ("nprobe", QUICK_IVF_NPROBE if quick else IVF_NPROBE),
        "ivf-classes": ("nprobe", QUICK_CLASS_NPROBE if quick else CLASS_NPROBE),
    }
    flat_single = 0.0
    snapshots = Path(tempfile.mkdtemp(dir=cache, prefix="snapshots-"))
    for kind, (knob, values) in sweeps.items():
        say(f"build {kind} over {len(unit):,} vectors")
        snapshot = snapshots / f"{kind}.index"
        index, build = measure_build(kind, data, class_vectors, snapshot)
        study.builds.append(build)
        for value in values:
            if knob == "efSearch":
                index.ef_search = value
            elif knob == "nprobe":
                index.nprobe = value
            per_filter = {
                f.name: measure_search(index, data, unit, unit_q, f, budget, least) for f in filters
            }
            row = SearchRow(
                kind, f"{knob} {value}" if knob else "exact", value if knob else None, per_filter
            )
            if kind == "flat":
                flat_single = per_filter["none"]["single"]
            row.speedup = per_filter["none"]["single"] / flat_single if flat_single else 0.0
            row.load = load1()
            study.rows.append(row)
            say("  " + " | ".join(row.cells()))
            if (knob, value) in (("", 0), ("efSearch", SERVICE_EF), ("nprobe", SERVICE_NPROBE)):
                none = filters[0]
                many = measure_search(index, data, unit, unit_q, none, budget, least, CORES)
                study.omp_rows.append(
                    {
                        "kind": kind,
                        "setting": row.setting,
                        "threads": CORES,
                        "qps_all_threads": many["single"],
                        "qps_one_thread": per_filter["none"]["single"],
                        "load": load1(),
                    }
                )
                say(
                    f"  {kind} {row.setting} one by one on {CORES} OpenMP threads: "
                    f"{many['single']:,.0f} q/s"
                )
        del index
        gc.collect()
        if kind in ("hnsw", "ivf"):  # as the service searches: a LiveIndex on the snapshot
            live = live_index(kind, snapshot, len(unit), unit.shape[1])  # type: ignore[arg-type]
            per_filter = {
                f.name: measure_search(live, data, unit, unit_q, f, budget, least) for f in filters
            }
            live.close()
            del live
            default = SERVICE_EF if kind == "hnsw" else SERVICE_NPROBE
            row = SearchRow(f"{kind} (LiveIndex)", f"{knob} {default}", default, per_filter)
            row.speedup = per_filter["none"]["single"] / flat_single if flat_single else 0.0
            row.load = load1()
            study.rows.append(row)
            say("  " + " | ".join(row.cells()))
        snapshot.unlink()
    shutil.rmtree(snapshots, ignore_errors=True)
    return study


def live_index(kind: IndexKind, snapshot: Path, n: int, dim: int) -> LiveIndex:
    """The service's search path over a built index: a LiveIndex opened on its snapshot
    (service defaults for efSearch and nprobe), in step with a store holding seqs 1..n."""
    live = LiveIndex(
        dim,
        setting=kind,
        snapshot_path=snapshot,
        model_id=SNAPSHOT_MODEL,
        read_store=lambda _: iter(()),
        auto_threshold=AUTO_THRESHOLD,
    )
    live.open(np.arange(1, n + 1, dtype=np.int64), lambda seqs: (seqs, np.zeros((0, dim))))
    return live


def equal_recall(rows: list[SearchRow]) -> list[dict[str, Any]]:
    """Each ivf-classes setting beside the fastest k-means IVF setting (one by one, no
    filter) that reaches at least its recall (or, if none does, the most accurate one)."""
    kmeans = [r for r in rows if r.kind == "ivf"]
    out = []
    for c in (r for r in rows if r.kind == "ivf-classes"):
        recall = c.per_filter["none"]["recall"]
        enough = [r for r in kmeans if r.per_filter["none"]["recall"] >= recall]
        if enough:
            best = max(enough, key=lambda r: r.per_filter["none"]["single"])
        else:
            best = max(kmeans, key=lambda r: r.per_filter["none"]["recall"])
        qps_c, qps_k = c.per_filter["none"]["single"], best.per_filter["none"]["single"]
        winner = "k-means" if enough and qps_k >= qps_c else "classes"
        out.append(
            {
                "classes": c.setting,
                "classes_recall": recall,
                "classes_qps": qps_c,
                "kmeans": best.setting,
                "kmeans_recall": best.per_filter["none"]["recall"],
                "kmeans_qps": qps_k,
                "winner": winner,
            }
        )
    return out
