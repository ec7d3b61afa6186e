"""The store comparison's report from made-up figures: its side-by-side table, the targets'
arithmetic and verdicts, and the command.

The benchmark itself is not run here: its quickest run (a Milvus server, two service
processes, wrk) takes over two minutes on the 2-core machine; `python
benchmarks/store_comparison.py --items 20000 --quick` is its smoke test by hand.
"""

import argparse

import numpy as np
import pytest

pytest.importorskip("pymilvus")  # the benchmark drives the service's Milvus store

from benchmarks.search.data import Data
from benchmarks.search.server import WrkCell
from benchmarks.store_comparison import StoreRun, report
from harness.results import Provenance


def cell(
    setting: str, connections: int, p50: float, p99: float, what: str = "GET /neighbors"
) -> WrkCell:
    return WrkCell(what, setting, connections, 1000, 10.0, p50, p99, p99 + 1, 0)


def filtered(setting: str, label_p99: float, bucket_p99: float) -> list[WrkCell]:
    return [
        cell(setting, 1, 1.0, label_p99, "GET /neighbors label (10 %)"),
        cell(setting, 1, 1.0, bucket_p99, "POST /neighbors bucket (1 %)"),
    ]


def imported(per_s: float, raw: float) -> dict[str, object]:
    return {
        "rows": 60_000,
        "seconds": 60_000 / per_s - 1,
        "wall_s": 60_000 / per_s,
        "raw": [{"default": raw}, {"default": raw / 2}],
        "raw_best": raw,
        "share": per_s / raw,
        "server_cpu": 100.0,
        "load": 1.0,
    }


def test_the_report_sets_the_stores_side_by_side_and_judges_issue_12s_targets() -> None:
    data = Data(
        vectors=np.zeros((1000, 4), np.float32),
        labels=np.zeros(1000, np.int64),
        buckets=np.zeros(1000, np.int64),
        queries=np.zeros((1, 4), np.float32),
        query_label=np.zeros(1, np.int64),
        query_bucket=np.zeros(1, np.int64),
        label_names=["a"],
        embedding={"onnxruntime_items_per_s": 20_000, "date": "today", "cached": True},
    )
    embedded = StoreRun(
        "embedded",
        "embedded, hnsw",
        load={"how": "offline", "insert_items_per_s": 50_000, "kind": "hnsw", "flush_s": 9.0},
        ready_s=12.0,
        recall={"none": 0.995, "none queries": 300},
        cells=[
            cell("embedded, hnsw", 1, 1.0, 5.0),
            cell("embedded, hnsw", 8, 6.0, 20.0),
            *filtered("embedded, hnsw", 10.0, 4.0),
        ],
        imported=imported(5_000, 10_000),
    )
    milvus = StoreRun(
        "milvus",
        "milvus, hnsw",
        load={"how": "pymilvus", "insert_items_per_s": 5_000, "index_s": 300.0},
        ready_s=9.0,
        recall={"none": 0.97, "none queries": 300},
        cells=[
            cell("milvus, hnsw", 1, 4.0, 9.0),
            cell("milvus, hnsw", 8, 30.0, 45.0),
            *filtered("milvus, hnsw", 25.0, 16.0),
        ],
        imported=imported(8_500, 10_000),
        direct={"lookup by id": {"calls": 500, "p50_ms": 1.5, "p99_ms": 4.0, "load": 1.0}},
    )
    args = argparse.Namespace(quick=False, note="a note")
    text = report(Provenance.begin("benchmarks/x.py", []), args, data, [embedded, milvus])

    assert "| | embedded, hnsw | milvus, hnsw |" in text
    assert "| recall@10 of GET /neighbors against exact search | 0.9950 (300 stored items) " in text
    assert "| GET /neighbors, concurrency 1: p50 / p99 ms, requests/s | 1.0 / 5.0, 100 " in text
    assert "| lookup by id | 500 | 1.5 | 4.0 | 1.00 |" in text
    targets = text.split("## Targets")[1]
    assert "| milvus recall@10, GET /neighbors, N=1,000 | 0.9700 | >= 0.98 | **MISS** |" in targets
    assert "concurrency 1 | 9.0 / 5.0 ms = 1.80x | <= 2x | **PASS** |" in targets
    assert "concurrency 8 | 45.0 / 20.0 ms = 2.25x | <= 2x | **MISS** |" in targets
    assert "(10 %) p99, concurrency 1 | 25.0 / 10.0 ms = 2.50x | <= 3x | **PASS** |" in targets
    assert "bucket (1 %) p99, concurrency 1 | 16.0 / 4.0 ms = 4.00x | <= 3x | **MISS** |" in targets
    assert "8,500 / 10,000 items/s = 0.85x (60,000 images) | >= 0.8x | **PASS** |" in targets
    assert text.startswith("# The embedded and milvus stores at 1,000 items\n\n- Commit: ")
    assert "- Note: a note\n- Reproduce: `python benchmarks/x.py`\n" in text
