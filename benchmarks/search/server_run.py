"""item_search's server part, start to end, on a copy of the offline-built data directory.

In turn: the HNSW server (process start to /readyz 200, recall@10 of GET /neighbors
against exact search, GET /neighbors latency at concurrency 1 and 8 with wrk, filtered by a
label (10 %) and by a metadata bucket (1 %, POST /neighbors), POST /items latency with no
background job and during a merge, then `kill -9` during writes); its restart after the
kill; the same directory with COREL_INDEX_KIND=auto; HNSW with OMP_NUM_THREADS=1; and a
start with COREL_INDEX_KIND=ivf, whose rebuild from the store POST /items is timed during.
"""

from __future__ import annotations

import base64
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.search.data import Data, fashion_mnist
from benchmarks.search.server import (
    QUICK_SERVER_QUERIES,
    SERVER_QUERIES,
    JobWatch,
    WrkCell,
    index_state,
    jobs_done,
    neighbour_scripts,
    pristine_data_dir,
    run_wrk,
    server_recall,
    start_server,
    wait_for_job,
    wait_until_idle,
)
from corel.class_rule import l2_normalise
from harness import wrk
from harness.progress import load1, say
from harness.server import LocalServer
from service.items.merge_worker import DELTA_SHARE, MIN_DELTA

POST_BATCH = 8  # items per POST /items in the write-latency cells
WRITE_IMAGES = 64  # those items cycle through this many test images


def lua_writes(images_b64: list[str], prefix: str) -> str:
    """A wrk script posting POST_BATCH new items (tensor inputs) per request, unique ids."""
    rows = ",\n".join(wrk.lua(b) for b in images_b64)
    return wrk.script(
        f"local pixels = {{\n{rows}\n}}\nlocal prefix = {wrk.lua(prefix)}\n"
        f"local B = {POST_BATCH}\n"
        + """request = function()
  n = n + 1
  local parts = {}
  for j = 1, B do
    local p = pixels[((n * B + j) % #pixels) + 1]
    parts[j] = '{"id":"' .. prefix .. tid .. '-' .. n .. '-' .. j ..
      '","input":{"tensor":{"b64":"' .. p .. '"}},"label":"written"}'
  end
  return wrk.format("POST", "/items", headers, '{"items":[' .. table.concat(parts, ",") .. ']}')
end
"""
    )


def write_images(count: int) -> list[str]:
    """The last `count` Fashion-MNIST test images, base64 uint8 bytes."""
    images, _ = fashion_mnist()
    return [base64.b64encode(images[-1 - n].tobytes()).decode() for n in range(count)]


def post_vectors(client: httpx.Client, data: Data, count: int, prefix: str) -> float:
    """POST /items with `count` raw vectors (copies of stored ones under new ids), 1,024 per
    request; seconds taken."""
    started = time.perf_counter()
    n = len(data.vectors)
    for start in range(0, count, 1024):
        items = [
            {
                "id": f"{prefix}-{i}",
                "vector": data.vectors[i % n].tolist(),
                "label": data.label_names[data.labels[i % n]],
                "metadata": {"bucket": int(data.buckets[i % n])},
            }
            for i in range(start, min(count, start + 1024))
        ]
        answer = client.post("/items", json={"items": items}, timeout=300)
        if answer.status_code != 201:
            raise SystemExit(f"POST /items: {answer.status_code} {answer.text[:500]}")
    return time.perf_counter() - started


@dataclass
class ServerResults:
    build: dict[str, Any] = field(default_factory=dict)
    ready: list[dict[str, Any]] = field(default_factory=list)
    recall: dict[str, float] = field(default_factory=dict)
    cells: list[WrkCell] = field(default_factory=list)
    jobs: dict[str, Any] = field(default_factory=dict)
    kill: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """What every phase below shares: the inputs, the wrk scripts and the results so far."""

    data: Data
    bundle: Path
    seed: int
    quick: bool
    work: Path
    res: ServerResults
    scripts: dict[str, str]
    images: list[str]

    @property
    def seconds(self) -> int:  # per wrk run
        return 1 if self.quick else 10

    def start(
        self, kind: str, log: str, when: str, setting: str = "", env: dict[str, str] | None = None
    ) -> LocalServer:
        """A server on the data directory, and its row in the start-up table."""
        server, secs = start_server(self.bundle, self.work / "data", kind, self.work / log, env)
        try:
            with server.client() as client:
                state = index_state(client)
        except BaseException:
            server.stop()
            raise
        self.res.ready.append(
            {
                "setting": setting or kind,
                "when": when,
                "seconds": secs,
                "index": state.get("kind"),
                "main": state.get("main"),
                "delta": state.get("delta"),
                "load": load1(),
            }
        )
        return server

    def cell(self, server: LocalServer, script: str, cell: WrkCell) -> WrkCell:
        self.res.cells.append(run_wrk(server, script, cell, self.seconds, self.work))
        return cell


def through_server(
    data: Data, bundle: Path, seed: int, quick: bool, work: Path, cache: Path
) -> ServerResults:
    """Every phase in turn; the servers' logs and the data directory's copy in `work`."""
    res = ServerResults()
    pristine, res.build = pristine_data_dir(data, bundle, seed, cache)
    say("server data: copying the pristine data directory")
    shutil.copytree(pristine, work / "data", ignore=shutil.ignore_patterns("built.json"))
    run = _Run(
        data,
        bundle,
        seed,
        quick,
        work,
        res,
        neighbour_scripts(data, seed),
        write_images(WRITE_IMAGES),
    )
    server = run.start("hnsw", "server-hnsw.log", "start on the offline-built data directory")
    try:
        _reads(run, server)
        _writes_and_merge(run, server)
        acked = _kill_during_writes(run, server)
    finally:
        server.stop()
    _after_kill(run, acked)
    _auto(run)
    _one_openmp_thread(run)
    _rebuild(run)
    return res


def _reads(run: _Run, server: LocalServer) -> None:
    """recall@10 through GET/POST /neighbors, then its latency with wrk."""
    with server.client() as client:
        t = time.perf_counter()
        index_state(client)
        run.res.jobs["get_items_s"] = time.perf_counter() - t
        count = QUICK_SERVER_QUERIES if run.quick else SERVER_QUERIES
        unit = l2_normalise(run.data.vectors)
        budget = 10 if run.quick else 120
        run.res.recall = server_recall(client, run.data, unit, count, run.seed, budget)
    for what, script, connections in (
        ("GET /neighbors", "none", 1),
        ("GET /neighbors", "none", 8),
        ("GET /neighbors label (10 %)", "label", 1),
        ("POST /neighbors bucket (1 %)", "bucket", 1),
    ):
        run.cell(server, run.scripts[script], WrkCell(what, "hnsw", connections))


def _writes_and_merge(run: _Run, server: LocalServer) -> None:
    """POST /items with no background job, then during a merge of the delta into main."""
    res, what = run.res, f"POST /items ({POST_BATCH} images)"
    with server.client() as client:
        if index_state(client).get("job"):
            wait_until_idle(client, jobs_done(client), 3600)
        with JobWatch(client) as watch:
            cell = run.cell(
                server, lua_writes(run.images, "w0-"), WrkCell(what, "hnsw", 1, note="no job")
            )
        if watch.finished is not None or index_state(client).get("job"):
            cell.note = "a job ran (not a clean baseline)"
        state = index_state(client)
        limit = max(MIN_DELTA, int(DELTA_SHARE * state["main"]))
        need = max(0, limit - state["delta"]) + 64
        say(f"merge: adding {need:,} vectors to pass the merge limit ({limit:,})")
        res.jobs["merge_items"] = need
        res.jobs["merge_post_s"] = post_vectors(client, run.data, need, "merge")
        before = jobs_done(client)
        job = wait_for_job(client, 60)
        res.jobs["merge_job"] = job
        with JobWatch(client) as watch:
            cell = run.cell(server, lua_writes(run.images, "w1-"), WrkCell(what, "hnsw", 1))
        share = watch.coverage()
        cell.note = f"during a merge of {need:,} into {state['main']:,} ({share:.0%} of the run)"
        end = wait_until_idle(client, before, 3600)
        if job and end:
            res.jobs["merge_s"] = time.time() - job["started"] - (time.perf_counter() - end)
        say(f"merge done: {res.jobs.get('merge_s', float('nan')):.1f} s")


def _kill_during_writes(run: _Run, server: LocalServer) -> list[str]:
    """`kill -9` while a client writes batches of 8 vectors; the first id of each batch
    acknowledged (201) before it."""
    acked: list[str] = []
    stop = threading.Event()
    vectors = run.data.vectors

    def writer() -> None:
        with server.client() as client:
            batch = 0
            while not stop.is_set():
                items = [
                    {
                        "id": f"k9-{batch}-{j}",
                        "vector": vectors[(batch * 8 + j) % len(vectors)].tolist(),
                    }
                    for j in range(8)
                ]
                try:
                    answer = client.post("/items", json={"items": items})
                except httpx.HTTPError:
                    return
                if answer.status_code == 201:
                    acked.append(f"k9-{batch}-0")
                batch += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1 if run.quick else 3)
    server.kill()
    stop.set()
    thread.join(30)
    say(f"kill -9 after {len(acked)} acknowledged writes of 8 items")
    return acked


def _after_kill(run: _Run, acked: list[str]) -> None:
    """The restart after the kill: how long, and whether every acknowledged batch is there."""
    log, when = "server-hnsw-after-kill.log", "restart after kill -9 during writes"
    server = run.start("hnsw", log, when)
    try:
        with server.client() as client:
            lost = [a for a in acked if client.get(f"/items/{a}").status_code != 200]
            total = client.get("/items", params={"limit": 1}).json()["total"]
        run.res.kill = {"acknowledged_batches": len(acked), "lost": len(lost), "total_items": total}
    finally:
        server.stop()


def _auto(run: _Run) -> None:
    """What a default server (COREL_INDEX_KIND=auto) does at this size."""
    server = run.start("auto", "server-auto.log", "restart (graceful stop before)")
    try:
        kind = run.res.ready[-1]["index"]
        run.cell(server, run.scripts["none"], WrkCell("GET /neighbors", f"auto ({kind})", 1))
    finally:
        server.stop()


def _one_openmp_thread(run: _Run) -> None:
    """HNSW again, each search on one OpenMP thread (index_study.OMP_NOTE)."""
    one = "hnsw, OMP_NUM_THREADS=1"
    when, env = "restart (graceful stop before)", {"OMP_NUM_THREADS": "1"}
    server = run.start("hnsw", "server-hnsw-omp1.log", when, one, env)
    try:
        for what, script, connections in (
            ("GET /neighbors", "none", 1),
            ("GET /neighbors", "none", 8),
            ("GET /neighbors label (10 %)", "label", 1),
        ):
            run.cell(server, run.scripts[script], WrkCell(what, one, connections))
    finally:
        server.stop()


def _rebuild(run: _Run) -> None:
    """A start with COREL_INDEX_KIND=ivf on the HNSW snapshot: a rebuild from the store,
    with POST /items timed during it."""
    when = "restart, then a rebuild from the store to IVF"
    server = run.start("ivf", "server-ivf.log", when)
    try:
        with server.client() as client:
            job = wait_for_job(client, 60)
            run.res.jobs["rebuild_job"] = job
            what = f"POST /items ({POST_BATCH} images)"
            with JobWatch(client) as watch:
                cell = run.cell(
                    server,
                    lua_writes(run.images, "w2-"),
                    WrkCell(what, "hnsw, rebuilding to ivf", 1),
                )
            n = len(run.data.vectors)
            cell.note = (
                f"during a rebuild of {n:,} from the store ({watch.coverage():.0%} of the run)"
            )
            if job is None:
                cell.note = "no rebuild seen"
            run.res.jobs["rebuild_after_window"] = index_state(client).get("job")
    finally:
        server.stop()
