"""The index switch benchmark: its report from made-up windows (the span's percentiles come
from the merged histograms, the verdicts from them), and its quick mode end to end.

Only the report's shape is checked end to end, never a speed: timings on a shared CI machine
are noise. The quick run embeds its 20,000 items afresh in a temporary cache.
"""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.index_switch import Run, Window, merge, percentile_ms, report

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "index_switch.py"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def window(
    start: float, connections: int, histogram: dict[int, int], stored: int, held: int
) -> Window:
    """A made-up window: `stored` and `held` hits of the 20 x 10 neighbours asked of each."""
    job = {"job": "merge", "kind": "hnsw", "done": 20_000, "total": 50_000}
    return Window(
        start_s=start,
        end_s=start + 5,
        connections=connections,
        requests=sum(histogram.values()),
        p50_ms=percentile_ms(histogram, 50),
        p99_ms=percentile_ms(histogram, 99),
        max_ms=max(histogram) / 1000,
        errors=0,
        server_cpu=100.0,
        load=1.5,
        before={"kind": "hnsw", "wanted": "hnsw", "main": 50_000, "delta": 50_000, "job": job},
        after={"kind": "hnsw", "wanted": "hnsw", "main": 100_000, "delta": 0, "job": None},
        hits={"stored": stored, "held-out": held},
        histogram=histogram,
    )


def test_percentiles_come_from_the_merged_histograms() -> None:
    slow, fast = {20_000: 5, 2_000: 95}, {1_000: 900}
    merged = merge([slow, fast])
    assert merged == {20_000: 5, 2_000: 95, 1_000: 900}
    assert percentile_ms(slow, 99) == 20.0  # 5 % of one window is slow
    assert percentile_ms(merged, 99) == 2.0  # 0.5 % of the span is
    assert percentile_ms(merged, 50) == 1.0
    assert math.isnan(percentile_ms({}, 99))


def test_the_report_judges_the_span_at_concurrency_1() -> None:
    windows = [
        window(0, 1, {20_000: 5, 2_000: 95}, 200, 196),
        window(5, 8, {30_000: 100}, 196, 190),
        window(10, 1, {1_000: 900}, 198, 200),
    ]
    run = Run(200_000, 40.0, 120.0, None, windows, 10.0, windows[-1].after)
    text = report(run, span=15, window=5)
    row = "| 0-5 | 1 | 100 | 2.0 | 20.0 | 20 | 0 | 100 | 1.50 | 1.000 | 0.980 | "
    assert row + "hnsw 50,000+50,000, merge→hnsw 20,000/50,000 | hnsw 100,000+0 |" in text
    assert "| whole span | 1 | 10 | 1,000 | 1.0 | 2.0 | 20 | 20.0 | 0 | 0.9950 | 0.9900 |" in text
    assert "| whole span | 8 | 5 | 100 | 30.0 | 30.0 | 30 | 30.0 | 0 | 0.9800 | 0.9500 |" in text
    assert (
        "| during the switch | 1 | 5 | 100 | 2.0 | 20.0 | 20 | 20.0 | 0 | 1.0000 | 0.9800 |" in text
    )
    assert "done 10 s after the end of ingest" in text
    assert "from the end of ingest on, concurrency 1: 2.0 ms (target <= 15 ms): **PASS**" in text
    assert "during the switch, concurrency 1: 20.0 ms (target <= 15 ms): **MISS**" in text
    assert "stored items by id (60 queries): 0.9900 (target >= 0.99): **PASS**" in text
    assert "held-out query vectors (60 queries): 0.9767 (target >= 0.99): **MISS**" in text

    slow = [window(0, 1, {16_000: 2, 1_000: 98}, 180, 200)]
    text = report(Run(200_000, 40.0, 120.0, None, slow, None, {}), span=5, window=5)
    assert "from the end of ingest on, concurrency 1: 16.0 ms (target <= 15 ms): **MISS**" in text
    assert "during the switch, concurrency 1: 16.0 ms" in text  # never done: every window
    assert "by id (20 queries): 0.9000 (target >= 0.99): **MISS**" in text
    assert "still going at the end of the span" in text


# One server start, 20,000 items posted and eight 1 s wrk runs: about a minute.
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs Debian's wrk (apt-get install wrk)")
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_quick_mode_switches_to_hnsw_and_reports_every_window(tmp_path: Path) -> None:
    out = tmp_path / "index_switch.md"
    command = [sys.executable, str(SCRIPT), "--quick", "--cache", str(tmp_path), "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout
    assert out.read_text() == text
    assert text.startswith("# Latency while the index switches, 20,000 items\n\n- Commit: ")
    lines = text.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("| t s | connections"))
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(line)
    assert len(rows) >= 4
    assert {row.split("|")[2].strip() for row in rows} == {"1", "8"}
    assert all(row.split("|")[7].strip() == "0" for row in rows), "no request may fail"
    assert "hnsw" in text  # the index switched from flat within the run
    assert text.count("**PASS**") + text.count("**MISS**") == 4
    assert "Reproduce: `python benchmarks/index_switch.py --quick" in text
