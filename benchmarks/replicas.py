"""Scaling out on one machine: workers, replicas sharing a Milvus, and what crashes lose.

In one run, against a real Milvus standalone server (the `milvus` pip package's
`milvus-server`, started here on 127.0.0.1:19530 with its data in a temporary folder) and
real service processes (`python -m service`, COREL_STORE=milvus):

1. throughput: POST /classify with one Fashion-MNIST image per request (a `tensor` input),
   at concurrency 32 with Debian's `wrk` (a C load generator, so the cores are left to the
   server), against one server with COREL_WORKERS=1 and then =2; the ratio is the target
   (>= 1.7x on 2 cores). The embedded store with one worker is measured too, for reference.
   The three servers take turns (`--rounds`, default 2) and the ratio is the median of the
   rounds' ratios; wrk's own CPU is reported beside the server's;
2. visibility: two replicas; an item written through A, then B's GET /neighbors polled
   until it lists it (20 times); a class imprinted through A, then B's /classify polled
   until it predicts it (3 times): seconds from A's answer to B's;
3. kill -9 of a replica: 4 writers POST /items to replica C; once 40 are acknowledged (201)
   C is killed; every acknowledged id is then read through replica B;
4. kill -9 of Milvus: 4 writers POST /items through replica B; once 40 are acknowledged,
   every process of the Milvus server is killed (SIGKILL to its group), the server started
   again on the same data folder, and every acknowledged id read back through B.

Prints one markdown table per part, headed by where it came from (commit, machine, load,
the command that reproduces it), and writes it to benchmarks/results/: replicas.md for
every part, replicas_throughput.md with --throughput-only, replicas_crashes.md with
--skip-throughput, each with `_quick` before the suffix in quick mode (--out changes it).

    python benchmarks/replicas.py            # about 3 minutes
    python benchmarks/replicas.py --quick    # 3 s wrk runs, fewer repeats
    python benchmarks/replicas.py --throughput-only --rounds 3   # part 1 alone, 3 turns
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from harness import DEFAULT_BUNDLE, FASHION_DIR, RESULTS, wrk  # noqa: E402
from harness.milvus import MilvusServer, start_milvus  # noqa: E402
from harness.progress import say  # noqa: E402
from harness.results import Provenance  # noqa: E402
from harness.server import LocalServer, launch  # noqa: E402
from harness.writers import vector as _vector  # noqa: E402
from harness.writers import write_until_killed  # noqa: E402
from training.data import load_fashion_mnist_split  # noqa: E402


def classify_bodies(images: np.ndarray) -> list[str]:
    bodies = []
    for image in images:
        b64 = base64.b64encode(image.astype(np.uint8).tobytes()).decode()
        bodies.append('{"inputs":[{"tensor":{"b64":"' + b64 + '"}}]}')
    return bodies


def run_wrk(
    server: LocalServer, script: str, seconds: int, milvus: MilvusServer, work: Path
) -> dict[str, float]:
    """POST /classify at concurrency 32; CPU of the server (all its workers), of wrk and of
    Milvus (its own upkeep, time ticks and the workers' polls, shares these cores)."""
    milvus_pid = milvus.process.pid if milvus.process is not None else None
    watch = {"server": server.process.pid, "milvus": milvus_pid}
    cell = wrk.run(server.url, script, connections=32, seconds=seconds, work=work, watch=watch)
    if cell.errors:  # a rate of failed requests says nothing (a body-less POST is a fast 422)
        raise SystemExit(f"wrk: {cell.errors} of {cell.requests} requests failed or were not 2xx")
    return {
        "rps": cell.rps,
        "p50": cell.p50_ms,
        "p99": cell.p99_ms,
        "server_cpu": cell.cpu["server"],
        "client_cpu": cell.wrk_cpu,
        "milvus_cpu": cell.cpu.get("milvus", 0.0),
        "load": cell.load,
    }


def start(env: dict[str, str], work: Path, name: str) -> LocalServer:
    return launch(
        bundle=DEFAULT_BUNDLE, data_dir=work / name, log=work / f"{name}.log", env=env, timeout=180
    )


def _until(check: Callable[[], bool], timeout: float) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(0.01)
    return None


def writers_until_kill(url: str, kill: Callable[[], None], prefix: str) -> list[str]:
    """4 writers POST /items to `url`; `kill()` once 40 are acknowledged; the acked ids.
    A writer whose request fails goes on (Milvus, behind the replica, may be what died)."""
    return write_until_killed(
        url, kill, prefix, within=120, request_timeout=10, keep_writing_after_errors=True,
        settle=0.5,
    )  # fmt: skip


def throughput(
    milvus: MilvusServer,
    milvus_env: dict[str, str],
    work: Path,
    images: np.ndarray,
    seconds: int,
    rounds: int,
) -> list[tuple[str, int, dict[str, float]]]:
    """(server, round, wrk cell) for each server in each round: the servers take turns, so
    that a change of the machine's load falls on all of them alike."""
    script = wrk.lua_cycle([("POST", "/classify", b) for b in classify_bodies(images[:200])])
    rows = []
    for round_ in range(1, rounds + 1):
        for label, env in [
            ("embedded, 1 worker", {}),
            ("milvus, 1 worker", {**milvus_env, "COREL_WORKERS": "1"}),
            ("milvus, 2 workers", {**milvus_env, "COREL_WORKERS": "2"}),
        ]:
            server = start(env, work, label.replace(", ", "-").replace(" ", ""))
            try:
                run_wrk(server, script, 2, milvus, work)  # warm-up, not counted
                cell = run_wrk(server, script, seconds, milvus, work)
            finally:
                server.stop()
            say(f"round {round_}, {label}: {cell['rps']:,.0f} requests/s, p99 {cell['p99']:.1f} ms")
            rows.append((label, round_, cell))
    return rows


def visibility(
    a: LocalServer, b: LocalServer, images: np.ndarray, labels: np.ndarray, n: int
) -> tuple[list[float], list[float]]:
    item_s, class_s = [], []
    with a.client() as ca, b.client() as cb:

        def b_lists(item_id: str) -> bool:
            found = cb.get("/neighbors", params={"id": "v-anchor", "k": 100}).json()
            return item_id in [x["id"] for x in found["neighbors"]]

        def b_predicts(name: str, inputs: list[dict[str, Any]]) -> bool:
            results = cb.post("/classify", json={"inputs": inputs}).json()["results"]
            return any(r["label"] == name for r in results)

        ca.post("/items", json={"items": [{"id": "v-anchor", "vector": _vector(0)}]})
        _until(lambda: cb.get("/items/v-anchor").status_code == 200, 10)
        for i in range(n):
            item_id = f"v-{i}-{time.monotonic_ns()}"
            written = ca.post("/items", json={"items": [{"id": item_id, "vector": _vector(1)}]})
            assert written.status_code == 201, written.text
            seconds = _until(functools.partial(b_lists, item_id), 10)
            item_s.append(float("nan") if seconds is None else seconds)
        bags = [{"data": im.squeeze().astype(int).tolist()} for im in images[labels == 8][:8]]
        for i in range(max(1, n // 7)):
            name = f"handbag-{i}"
            ca.delete("/classes/Bag", params={"force": True})
            made = ca.post("/classes", json={"name": name, "inputs": bags[:5]})
            assert made.status_code == 201, made.text
            seconds = _until(functools.partial(b_predicts, name, bags[5:8]), 10)
            class_s.append(float("nan") if seconds is None else seconds)
            ca.delete(f"/classes/{name}")
    return item_s, class_s


def missing_through(server: LocalServer, ids: list[str], wait: float = 120) -> list[str]:
    with server.client() as client:
        _until(lambda: client.get("/items", params={"limit": 1}).status_code == 200, wait)
        return [i for i in ids if client.get(f"/items/{i}").status_code != 200]


@dataclass
class Crashes:
    """Visibility across replicas and what the two kills lost."""

    item_s: list[float]  # seconds until B listed an item written through A
    class_s: list[float]  # and predicted a class imprinted through A
    replica: tuple[list[str], list[str]]  # acknowledged, lost
    milvus: tuple[list[str], list[str], float]  # acknowledged, lost, seconds until read back


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs, fewer repeats")
    parser.add_argument(
        "--skip-throughput", action="store_true", help="only visibility and the kill -9 parts"
    )
    parser.add_argument("--throughput-only", action="store_true", help="only the wrk part")
    parser.add_argument(
        "--rounds", type=int, default=2, help="turns of the three servers in the wrk part"
    )
    parser.add_argument(
        "--keep", type=Path, help="work in this new folder and keep it (the servers' logs)"
    )
    parser.add_argument("--out", type=Path, help="the markdown file (default: by the parts run)")
    args = parser.parse_args(argv)
    if args.out is None:
        part = "_throughput" if args.throughput_only else "_crashes" if args.skip_throughput else ""
        args.out = RESULTS / f"replicas{part}{'_quick' if args.quick else ''}.md"
    return args


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/replicas.py", argv)
    args = parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: the servers and Milvus are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    seconds, repeats = (3, 7) if args.quick else (15, 20)
    images, labels = load_fashion_mnist_split(FASHION_DIR, "test")
    crashes = None
    with contextlib.ExitStack() as cleanup:
        if args.keep is None:
            work = Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="corel-replicas-"))
            )
        else:
            args.keep.mkdir(parents=True)
            work = args.keep
        say("starting milvus-server")
        milvus: MilvusServer = start_milvus(work / "milvus")
        env = {"COREL_STORE": "milvus", "COREL_MILVUS_URI": milvus.uri,
               "COREL_MILVUS_PREFIX": f"bench{os.getpid()}"}  # fmt: skip
        try:
            rows = (
                []
                if args.skip_throughput
                else throughput(milvus, env, work, images, seconds, args.rounds)
            )
            if not args.throughput_only:
                crashes, milvus = across_replicas(milvus, env, work, images, labels, repeats)
        finally:
            milvus.stop()
    text = provenance.document("Scaling out on one machine", report(rows, crashes))
    print(text, end="")
    provenance.write(args.out, text)
    say(f"wrote {args.out}")


def across_replicas(
    milvus: MilvusServer,
    env: dict[str, str],
    work: Path,
    images: np.ndarray,
    labels: np.ndarray,
    repeats: int,
) -> tuple[Crashes, MilvusServer]:
    """Parts 2 to 4 on three replicas; the Milvus server running at the end (started again)."""
    servers: list[LocalServer] = []
    try:
        a, b, c = (start(env, work, name) for name in "abc")
        servers += [a, b, c]
        say("visibility across replicas")
        item_s, class_s = visibility(a, b, images, labels, repeats)
        say(
            f"item seen by B after {np.nanmedian(item_s):.3f} s (median), "
            f"{np.nanmax(item_s):.3f} s (max); class after {np.nanmax(class_s):.3f} s (max)"
        )
        say("kill -9 of a replica under 4 writers")
        acked_c = writers_until_kill(c.url, c.kill, "kc")
        lost_c = missing_through(b, acked_c)
        say(f"replica killed: {len(acked_c)} acknowledged, {len(lost_c)} lost")
        say("kill -9 of the Milvus server under 4 writers")
        killed_at: list[float] = []

        def kill_milvus() -> None:
            killed_at.append(time.perf_counter())
            milvus.kill()

        acked_m = writers_until_kill(b.url, kill_milvus, "km")
        say("starting milvus-server again on its data")
        milvus = start_milvus(work / "milvus", timeout=900)
        say(
            f"milvus-server answers again, {time.perf_counter() - killed_at[0]:.0f} s "
            f"after the kill ({milvus.ports_waited:.0f} s of it waiting for its ports)"
        )
        lost_m = missing_through(b, acked_m)
        back_s = time.perf_counter() - killed_at[0]
        say(f"Milvus killed: {len(acked_m)} acknowledged, {len(lost_m)} lost")
    finally:
        for server in servers:
            server.stop()
    return Crashes(item_s, class_s, (acked_c, lost_c), (acked_m, lost_m, back_s)), milvus


def report(rows: list[tuple[str, int, dict[str, float]]], crashes: Crashes | None) -> str:
    """The tables of the parts that ran."""
    out = throughput_table(rows)
    if crashes is not None:
        item_s, class_s = crashes.item_s, crashes.class_s
        (acked_c, lost_c), (acked_m, lost_m, back_s) = crashes.replica, crashes.milvus
        out += [
            "### Visibility across replicas (seconds from A's answer until B's)",
            "",
            "| what | n | p50 s | max s |",
            "|---|---:|---:|---:|",
            f"| item → B's GET /neighbors | {len(item_s)} | {np.nanmedian(item_s):.3f} | "
            f"{np.nanmax(item_s):.3f} |",
            f"| class → B's /classify | {len(class_s)} | {np.nanmedian(class_s):.3f} | "
            f"{np.nanmax(class_s):.3f} |",
            "",
            "### kill -9 under 4 writers (POST /items, 1 item each)",
            "",
            "| killed | acknowledged | lost | note |",
            "|---|---:|---:|---|",
            f"| a replica | {len(acked_c)} | {len(lost_c)} | read through another replica |",
            f"| the Milvus server (every process) | {len(acked_m)} | {len(lost_m)} | "
            f"restarted on its data; all read back {back_s:.0f} s after the kill |",
            "",
        ]
    return "\n".join(out)


def throughput_table(rows: list[tuple[str, int, dict[str, float]]]) -> list[str]:
    if not rows:
        return []
    cells = {(label, round_): c for label, round_, c in rows}
    ratios = [
        cells["milvus, 2 workers", r]["rps"] / cells["milvus, 1 worker", r]["rps"]
        for r in sorted({round_ for _, round_, _ in rows})
    ]
    ratio = float(np.median(ratios))
    out = [
        "### POST /classify, 1 image per request, concurrency 32 (wrk)",
        "",
        "| server | round | requests/s | p50 ms | p99 ms | server CPU % | wrk CPU % "
        "| Milvus CPU % | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, round_, c in rows:
        out.append(
            f"| {label} | {round_} | {c['rps']:,.0f} | {c['p50']:.1f} | {c['p99']:.1f} | "
            f"{c['server_cpu']:.0f} | {c['client_cpu']:.0f} | "
            f"{c['milvus_cpu']:.0f} | {c['load']:.2f} |"
        )
    each = ", ".join(f"{r:.2f}x" for r in ratios)
    verdict = "PASS" if ratio >= 1.7 else "MISS"
    return [
        *out,
        "",
        f"2 workers / 1 worker (milvus store), median of the rounds: **{ratio:.2f}x** "
        f"({each}; target >= 1.7x: {verdict})",
        "",
    ]


if __name__ == "__main__":
    main()
