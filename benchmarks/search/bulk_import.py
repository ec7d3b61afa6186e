"""Bulk import: `corel-import` of Fashion-MNIST train images into a fresh server, between
two raw onnxruntime runs on the same images, measured in the same run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.search.data import Encoder, fashion_mnist
from benchmarks.search.server import index_state, start_server
from harness import FASHION_DIR, REPO
from harness.cpu import children_cpu, tree_cpu
from harness.progress import load1, say
from service.inference.runtime import session_options

IMPORT_ROWS, QUICK_IMPORT_ROWS = 60_000, 5_000  # Fashion-MNIST train images imported


def raw_rate(bundle: Path, pixels: np.ndarray) -> dict[str, float]:
    """onnxruntime items/s on these images at batch 1,024: default session options and the
    service's own (COREL_THREADS default, no spinning)."""
    out = {}
    for name, options in (("default", None), ("as served", session_options(0))):
        encoder = Encoder(bundle, options)
        encoder(pixels[:2048], batch=1024)  # warm-up
        encoder.items, encoder.seconds = 0, 0.0
        encoder(pixels, batch=1024)
        out[name] = encoder.rate
    return out


def bulk_import(
    bundle: Path, rows: int, work: Path, env: dict[str, str] | None = None, name: str = "import"
) -> dict[str, Any]:
    """corel-import of `rows` train images into a fresh server (its settings plus `env`,
    e.g. COREL_STORE=milvus), between two raw onnxruntime runs on the same images; `name`
    keeps the data directory, log and state file apart from another import's in `work`."""
    images, _ = fashion_mnist()
    pixels = images[:rows]  # the train split comes first
    say(f"{name}: raw onnxruntime on {rows:,} train images")
    raw = [raw_rate(bundle, pixels)]
    data_dir = work / f"{name}-data"
    server, _ = start_server(bundle, data_dir, "auto", work / f"server-{name}.log", env)
    try:
        command = [sys.executable, "-m", "service.importer", "--fashion-mnist", str(FASHION_DIR)]
        command += ["--split", "train", "--url", server.url, "--quiet"]
        command += ["--state", str(work / f"{name}-state.json")]
        if rows < IMPORT_ROWS:
            command += ["--limit", str(rows)]
        say(f"{name}: {shlex.join(command[1:])}")
        server0, client0 = tree_cpu(server.process.pid), children_cpu()
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=3600)
        wall = time.perf_counter() - started
        server1, client1 = tree_cpu(server.process.pid), children_cpu()
        if done.returncode != 0:
            raise SystemExit(f"corel-import failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        with server.client() as client:
            stored = client.get("/items", params={"limit": 1}).json()["total"]
            state = index_state(client)
    finally:
        server.stop()
    raw.append(raw_rate(bundle, pixels))
    best_raw = max(max(r.values()) for r in raw)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    own = re.search(r", ([0-9.]+) s, [0-9,]+ items/s", summary)
    seconds = float(own.group(1)) if own else wall  # from its first batch to its last answer
    result = {
        "rows": rows,
        "stored": stored,
        "wall_s": wall,
        "seconds": seconds,
        "items_per_s": rows / seconds,
        "summary": summary,
        "raw": raw,
        "raw_best": best_raw,
        "share": rows / wall / best_raw,
        "server_cpu": 100 * (server1 - server0) / wall,
        "client_cpu": 100 * (client1 - client0) / wall,
        "index_after": {k: state.get(k) for k in ("kind", "main", "delta")},
        "load": load1(),
    }
    say(f"{name}: {result['items_per_s']:,.0f} items/s, raw onnxruntime {best_raw:,.0f} items/s")
    return result
