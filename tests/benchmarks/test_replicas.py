"""The scaling-out benchmark's report from made-up figures: the median of the rounds' ratios
and the tables of the parts that ran. The run itself (a Milvus server, three servers, wrk)
takes minutes: `python benchmarks/replicas.py --quick` is its smoke test by hand."""

from pathlib import Path

from benchmarks.replicas import Crashes, parse_args, report
from harness import RESULTS


def cell(rps: float) -> dict[str, float]:
    return {"rps": rps, "p50": 20.0, "p99": 40.0, "server_cpu": 100.0, "client_cpu": 8.0,
            "milvus_cpu": 9.0, "load": 2.0}  # fmt: skip


def test_the_ratio_is_the_median_of_the_rounds_and_judged_against_1_7x() -> None:
    rows = [
        (label, round_, cell(rps))
        for round_, (one, two) in enumerate([(1000, 1500), (1000, 2000), (1000, 1800)], 1)
        for label, rps in (
            ("embedded, 1 worker", 1100),
            ("milvus, 1 worker", one),
            ("milvus, 2 workers", two),
        )
    ]
    text = report(rows, None)
    assert "median of the rounds: **1.80x** (1.50x, 2.00x, 1.80x; target >= 1.7x: PASS)" in text
    assert "| milvus, 2 workers | 2 | 2,000 | 20.0 | 40.0 | 100 | 8 | 9 | 2.00 |" in text
    assert "Visibility" not in text

    slow = [(label, r, cell(1000 if "1 worker" in label else 1500)) for label, r, _ in rows]
    assert "**1.50x** (1.50x, 1.50x, 1.50x; target >= 1.7x: MISS)" in report(slow, None)


def test_the_crash_tables_count_acknowledged_and_lost() -> None:
    crashes = Crashes(
        item_s=[0.1, 0.3, 0.2],
        class_s=[0.5],
        replica=([f"kc{i}" for i in range(42)], []),
        milvus=([f"km{i}" for i in range(40)], ["km3"], 97.4),
    )
    text = report([], crashes)
    assert "| item → B's GET /neighbors | 3 | 0.200 | 0.300 |" in text
    assert "| class → B's /classify | 1 | 0.500 | 0.500 |" in text
    assert "| a replica | 42 | 0 | read through another replica |" in text
    assert "| the Milvus server (every process) | 40 | 1 | " in text
    assert "all read back 97 s after the kill |" in text
    assert "POST /classify" not in text


def test_each_selection_of_parts_has_its_own_results_file() -> None:
    def out(*argv: str) -> Path:
        return parse_args(list(argv)).out

    assert out() == RESULTS / "replicas.md"
    assert out("--throughput-only", "--rounds", "3") == RESULTS / "replicas_throughput.md"
    assert out("--quick", "--skip-throughput") == RESULTS / "replicas_crashes_quick.md"
    assert out("--out", "/tmp/x.md") == Path("/tmp/x.md")
