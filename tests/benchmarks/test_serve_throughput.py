"""The serving benchmark's quick mode end to end: the real server twice and the naive peer,
this client's table and wrk's out.

Only the table's shape is checked (its rows, columns and ratio lines), never the speed
targets: timings on a shared CI machine are noise.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "serve_throughput.py"
COLUMNS = [
    "measurement",
    "batching",
    "concurrency",
    "items/request",
    "requests/s",
    "items/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU %",
    "client CPU %",
]


WRK_COLUMNS = [
    "measurement",
    "batching",
    "round",
    "concurrency",
    "items/request",
    "requests/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU %",
    "wrk CPU %",
]
PEER = "POST /classify (naive peer)"


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


# two server start-ups and the peer's, 24 cells of 0.5 s (quick mode's 1 s halved: only
# the table's shape is checked, and half a second still gets every cell answers) and three
# 1 s wrk runs
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs Debian's wrk")
def test_quick_mode_prints_the_full_table_and_the_ratios(tmp_path: Path) -> None:
    out = tmp_path / "serve_throughput.md"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--duration", "0.5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    lines = run.stdout.splitlines()
    header = lines.index("| " + " | ".join(COLUMNS) + " |")
    rows = [cells(line) for line in lines[header + 2 :] if line.startswith("| ")]
    rows = rows[: next(n for n, row in enumerate(rows) if row[0] == "measurement")]  # wrk's
    assert all(len(row) == len(COLUMNS) for row in rows)
    keys = {(row[0], row[1], row[2], row[3]) for row in rows}
    expected = {
        (raw + again, "-", "-", n)
        for raw in ("onnxruntime (CPU)", "onnxruntime (CPU, as served)")
        for again in ("", " again")
        for n in ("1", "128")
    }
    for batching in ("on", "off"):
        for path in ("/embed", "/classify"):
            expected |= {(f"POST {path}", batching, c, "1") for c in ("1", "8")}
        expected |= {
            (what, batching, "1", "128")
            for what in ("POST /embed", "POST /embed (PNG)", "POST /embed (tensor)")
        }
    expected |= {(PEER, "-", c, "1") for c in ("1", "8")}
    assert keys == expected
    for row in rows:
        items_per_s = float(row[5].replace(",", ""))
        assert items_per_s > 0, row  # every cell got answers
        if row[0].startswith("POST"):
            assert row[8] == "0", row  # and no errors
            assert float(row[6]) <= float(row[7]), row  # p50 <= p99

    header = lines.index("| " + " | ".join(WRK_COLUMNS) + " |")
    wrk_rows = [cells(line) for line in lines[header + 2 :] if line.startswith("| ")]
    wrk_rows = wrk_rows[: next(n for n, row in enumerate(wrk_rows) if row[0] == "ratio")]
    assert [row[:5] for row in wrk_rows] == [
        ["POST /classify", "on", "1", "8", "1"],
        [PEER, "-", "1", "8", "1"],
        ["POST /embed", "on", "1", "8", "1"],
    ]
    for row in wrk_rows:
        assert float(row[5].replace(",", "")) > 0 and row[8] == "0", row
    where = "concurrency 8, 1 image per request, batching on"
    for client in ("wrk", "asyncio client"):
        for ratio in (
            "/classify requests/s / the naive peer's /classify",
            "/classify requests/s / /embed requests/s",
        ):
            line = next(line for line in lines if line.startswith(f"| {ratio}, {where} ({client})"))
            assert line.rstrip().endswith(("| **PASS** |", "| **MISS** |")), line
        line = f"| /embed requests/s / the naive peer's /classify, {where} ({client}) |"
        assert any(x.startswith(line) and x.endswith("| - | - |") for x in lines), line

    for ratio in (
        "/embed requests/s, batching on / off, concurrency 8",
        "/classify requests/s, batching on / off, concurrency 8",
        "/embed with 128 items per request",
        "/embed with 128 PNG images",
        "/embed with 128 tensor inputs",
    ):
        line = next(line for line in lines if line.startswith(f"| {ratio}"))
        assert line.rstrip().endswith(("| **PASS** |", "| **FAIL** |")), line
    assert run.stdout.startswith("# Serving throughput\n\n- Commit: ")
    assert "- Machine: " in run.stdout and "- Load average (1, 5, 15 min): " in run.stdout
    assert "Each cell: 0.5 s measured after a 0.3 s warm-up" in run.stdout
    command = f"python benchmarks/serve_throughput.py --quick --duration 0.5 --out {out}"
    assert f"Reproduce: `{command}`" in run.stdout
    assert out.read_text() == run.stdout
