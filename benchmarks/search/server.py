"""The real server (`python -m service`) on a data directory built offline with the
service's own classes, and what item_search and store_comparison measure through it: the
recall@10 of its neighbours against exact search, wrk cells, the background index jobs.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from benchmarks.search.data import BUCKETS, CHUNK, TIE_EPS, Data, K, exact_topk, utc_now
from benchmarks.search.index_study import AUTO_THRESHOLD
from corel.bundle import ENCODER_FILE, load_bundle
from harness import wrk
from harness.progress import every, load1, say
from harness.server import LocalServer, launch
from service.items.live_index import LiveIndex
from service.items.sqlite_store import ItemStore
from service.items.types import NewItem

SERVER_ENV = {"COREL_PROVIDER": "cpu", "COREL_LOG_LEVEL": "warning", "COREL_API_KEY": ""}
SERVER_QUERIES, QUICK_SERVER_QUERIES = 300, 40  # stored ids whose neighbours are checked


def new_item(data: Data, i: int) -> NewItem:
    """Item i as both stores hold it: id `fm-{i}`, its class and metadata bucket."""
    return NewItem(
        f"fm-{i}",
        data.vectors[i],
        data.label_names[data.labels[i]],
        {"bucket": int(data.buckets[i])},
    )


def pristine_data_dir(
    data: Data, bundle: Path, seed: int, cache: Path
) -> tuple[Path, dict[str, Any]]:
    """A data directory holding the N items and an HNSW snapshot, built with the service's
    own classes; cached in `cache` (copied before each use, since the server changes it)."""
    manifest = load_bundle(bundle).manifest
    model_id = manifest.files[ENCODER_FILE]
    n, dim = data.vectors.shape
    folder = cache / f"server-{model_id[:12]}-seed{seed}-n{n}"
    done = folder / "built.json"
    if done.exists():
        say(f"server data: cached in {folder}")
        return folder, {**json.loads(done.read_text()), "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    store = ItemStore(folder / "items.sqlite3")
    report = every(20, "server data: ItemStore.insert")
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        store.insert([new_item(data, i) for i in range(start, min(n, start + CHUNK))], model_id)
        report(min(n, start + CHUNK), n)
    insert_s = time.perf_counter() - started
    # `auto` with the threshold at N: the flush is then a rebuild from the store to HNSW,
    # which reports its progress (a merge into an empty HNSW index would not).
    live = LiveIndex(
        dim,
        setting="auto",
        snapshot_path=folder / "items.index",
        model_id=model_id,
        read_store=lambda up_to: store.iter_vectors(model_id, up_to_seq=up_to),
        auto_threshold=min(AUTO_THRESHOLD, n),
    )

    def fetch(seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = store.vectors(model_id, seqs=seqs)
        return rows.seqs, rows.vectors.reshape(len(rows.seqs), dim)

    t = time.perf_counter()
    live.open(store.seqs(model_id), fetch)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    live.flush()
    flush_s = time.perf_counter() - t
    kind = live.kind
    live.close()
    store.close()
    built = {
        "items": n,
        "insert_s": round(insert_s, 1),
        "insert_items_per_s": round(n / insert_s),
        "open_s": round(open_s, 1),
        "flush_s": round(flush_s, 1),
        "kind": kind,
        "sqlite_bytes": (folder / "items.sqlite3").stat().st_size,
        "snapshot_bytes": (folder / "items.index").stat().st_size,
        "date": utc_now(),
        "load": load1(),
    }
    done.write_text(json.dumps(built, indent=1))
    say(
        f"server data: insert {insert_s:.0f} s, open {open_s:.0f} s, flush ({kind}) {flush_s:.0f} s"
    )
    return folder, {**built, "cached": False}


def start_server(
    bundle: Path, data_dir: Path, kind: str, log: Path, extra: dict[str, str] | None = None
) -> tuple[LocalServer, float]:
    """`python -m service` on the data directory; seconds from process start to /readyz 200."""
    started = time.perf_counter()
    env = {**SERVER_ENV, "COREL_INDEX_KIND": kind, **(extra or {})}
    try:
        server = launch(bundle=bundle, data_dir=data_dir, log=log, env=env, timeout=1800)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc
    ready = time.perf_counter() - started
    say(f"server ({kind}) ready in {ready:.1f} s")
    return server, ready


@dataclass
class WrkCell:
    """One wrk run's row in the report: what was sent, to which index, and what it took."""

    what: str
    index: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    errors: int = 0
    server_cpu: float = float("nan")  # % of one core over the run
    client_cpu: float = float("nan")
    load: float = 0.0
    note: str = ""
    extra_cpu: dict[str, float] = field(default_factory=dict)  # other watched processes

    def cells(self) -> list[str]:
        rps = self.requests / self.seconds if self.seconds else 0.0
        return [
            self.what,
            self.index,
            str(self.connections),
            f"{self.requests:,}",
            f"{rps:,.0f}",
            f"{self.p50_ms:.1f}",
            f"{self.p99_ms:.1f}",
            f"{self.max_ms:.0f}",
            str(self.errors),
            f"{self.server_cpu:.0f}",
            f"{self.client_cpu:.0f}",
            f"{self.load:.2f}",
            self.note or "-",
        ]


WRK_COLUMNS = [
    "measurement",
    "index",
    "connections",
    "requests",
    "requests/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "errors",
    "server CPU %",
    "wrk CPU %",
    "load",
    "note",
]


def run_wrk(
    server: LocalServer,
    script: str,
    cell: WrkCell,
    seconds: int,
    work: Path,
    watch: dict[str, int | None] | None = None,
) -> WrkCell:
    """One wrk run against the server, its figures written into `cell`; `watch` names other
    process trees whose CPU goes into `cell.extra_cpu` (Milvus's)."""
    measured = wrk.run(
        server.url,
        script,
        connections=cell.connections,
        seconds=seconds,
        work=work,
        watch={"server": server.process.pid, **(watch or {})},
    )
    cell.requests, cell.seconds, cell.errors = measured.requests, measured.seconds, measured.errors
    cell.p50_ms, cell.p99_ms, cell.max_ms = measured.p50_ms, measured.p99_ms, measured.max_ms
    cell.server_cpu, cell.client_cpu = measured.cpu.pop("server"), measured.wrk_cpu
    cell.extra_cpu, cell.load = measured.cpu, measured.load
    say("  " + " | ".join(cell.cells()))
    return cell


def index_state(client: httpx.Client) -> dict[str, Any]:
    """GET /items?limit=1 → index → index: kind, sizes, the running job."""
    answer = client.get("/items", params={"limit": 1})
    answer.raise_for_status()
    state: dict[str, Any] = answer.json()["index"]["index"] or {}
    return state


def jobs_done(client: httpx.Client) -> float:
    """Background index jobs finished so far (Prometheus counter, all kinds of job)."""
    text = client.get("/metrics").text
    pattern = r'^corel_index_jobs_total\{[^}]*outcome="done"[^}]*\} ([0-9.e+]+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


class JobWatch:
    """Polls /metrics (cheap) while a measurement runs: when did the running job finish?"""

    def __init__(self, client: httpx.Client) -> None:
        self.client, self.before = client, jobs_done(client)
        self.finished: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            if self.finished is None and jobs_done(self.client) > self.before:
                self.finished = time.perf_counter()

    def __enter__(self) -> JobWatch:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.ended = time.perf_counter()
        self._stop.set()
        self._thread.join()

    def coverage(self) -> float:
        """Share of the watched window during which the job was still running."""
        end = self.ended if self.finished is None else min(self.finished, self.ended)
        return max(0.0, end - self.started) / max(self.ended - self.started, 1e-9)


def wait_for_job(client: httpx.Client, timeout: float) -> dict[str, Any] | None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        job = index_state(client).get("job")
        if job:
            return dict(job)
        time.sleep(0.5)
    return None


def wait_until_idle(client: httpx.Client, before: float, timeout: float) -> float | None:
    """Wait until the jobs-done counter passes `before`; when it did (perf_counter)."""
    deadline = time.perf_counter() + timeout
    report = every(30, "waiting for the background job")
    while time.perf_counter() < deadline:
        if jobs_done(client) > before:
            return time.perf_counter()
        state = index_state(client)
        job = state.get("job")
        if job:
            report(int(job["done"]), int(job["total"]))
        elif jobs_done(client) > before:
            return time.perf_counter()
        time.sleep(2)
    return None


def server_recall(
    client: httpx.Client,
    data: Data,
    unit: np.ndarray,
    count: int,
    seed: int,
    budget: float,
    filters: tuple[str, ...] = ("none", "label (10 %)", "bucket (1 %)"),
) -> dict[str, float]:
    """recall@10 of the server's neighbours of up to `count` stored items per filter (none,
    label via GET, bucket via POST /neighbors; at least 10, else until `budget` seconds are
    spent) against exact search; mean ms per request. The stored items asked depend only
    on `seed` and `count`, so two servers holding the same items are asked the same."""
    rng = np.random.default_rng([seed, 77])
    rows = rng.choice(len(unit), count, replace=False)
    labels = rng.integers(0, 10, count)
    buckets = rng.integers(0, BUCKETS, count)
    out: dict[str, float] = {}
    for name in filters:
        hits, spent, asked = 0, 0.0, 0
        for row, label, bucket in zip(rows, labels, buckets, strict=True):
            if asked >= 10 and spent >= budget:
                break
            asked += 1
            item = f"fm-{row}"
            t = time.perf_counter()
            if name == "bucket (1 %)":
                body = {
                    "queries": [{"id": item}],
                    "k": K,
                    "filter": {"metadata": {"bucket": int(bucket)}},
                }
                answer = client.post("/neighbors", json=body)
                found = (
                    answer.json()["results"][0]["neighbors"] if answer.status_code == 200 else []
                )
            else:
                params: dict[str, Any] = {"id": item, "k": K}
                if name == "label (10 %)":
                    params["label"] = data.label_names[label]
                answer = client.get("/neighbors", params=params)
                found = answer.json()["neighbors"] if answer.status_code == 200 else []
            spent += time.perf_counter() - t
            if answer.status_code != 200:
                raise SystemExit(f"/neighbors: {answer.status_code} {answer.text[:300]}")
            allowed = np.ones(len(unit), bool)
            if name == "label (10 %)":
                allowed = data.labels == label
            elif name == "bucket (1 %)":
                allowed = data.buckets == bucket
            allowed[row] = False  # a stored item is not its own neighbour
            candidates = np.flatnonzero(allowed)
            kth = exact_topk(unit[candidates], unit[row : row + 1], K)[0][0, -1]
            got = np.array(
                sorted({int(h["id"][3:]) for h in found if h["id"].startswith("fm-")}), np.int64
            )
            got = got[allowed[got]] if len(got) else got
            sims = unit[got] @ unit[row] if len(got) else np.zeros(0)
            hits += min(K, int((sims >= kth - TIE_EPS).sum()))
        out[name] = hits / (asked * K)
        out[f"{name} ms"] = 1000 * spent / asked
        out[f"{name} queries"] = asked
    say(
        "server recall@10: "
        + ", ".join(f"{k} {v:.4f}" for k, v in out.items() if "%" in k or k == "none")
    )
    return out


def neighbour_scripts(data: Data, seed: int) -> dict[str, str]:
    rng = np.random.default_rng([seed, 78])
    rows = rng.choice(len(data.vectors), min(1000, len(data.vectors)), replace=False)
    labels = rng.integers(0, 10, len(rows))
    buckets = rng.integers(0, BUCKETS, len(rows))
    plain = [("GET", f"/neighbors?id=fm-{r}&k={K}", None) for r in rows]
    by_label = [
        ("GET", f"/neighbors?id=fm-{r}&k={K}&label={quote(data.label_names[c])}", None)
        for r, c in zip(rows, labels, strict=True)
    ]
    by_bucket = [
        (
            "POST",
            "/neighbors",
            json.dumps(
                {"queries": [{"id": f"fm-{r}"}], "k": K, "filter": {"metadata": {"bucket": int(b)}}}
            ),
        )
        for r, b in zip(rows, buckets, strict=True)
    ]
    cycle = wrk.lua_cycle
    return {"none": cycle(plain), "label": cycle(by_label), "bucket": cycle(by_bucket)}
