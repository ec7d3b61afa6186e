"""The request-overhead benchmark end to end on a few requests: its table, not its speed."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_prints_a_row_per_kind_of_request_with_the_cost_around_the_model(tmp_path: Path) -> None:
    out = tmp_path / "request_overhead.md"
    run = subprocess.run(
        [sys.executable, "benchmarks/request_overhead.py", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in run.stdout.splitlines()
        if line.startswith("| /")
    ]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("/embed, 1 data", "1", "32"),
        ("/embed, 1 tensor", "1", "32"),
        ("/classify, 1 data", "1", "32"),
        ("/embed, 128 data", "128", "2"),
        ("/embed, 128 image", "128", "2"),
        ("/embed, 128 tensor", "128", "2"),
    ]
    for row in rows:
        wall, cpu, model, around = (float(cell.replace(",", "")) for cell in row[3:])
        assert wall > 0 and cpu > 0 and model > 0
        assert abs(around - (cpu - model)) <= 1  # the difference, up to rounding
    command = f"python benchmarks/request_overhead.py --quick --out {out}"
    assert f"- Reproduce: `{command}`" in run.stdout
    assert out.read_text() == run.stdout
