"""The item search benchmark's quick mode end to end at 12,000 items: one report out.

Only the report's shape is checked (its tables' rows and columns, one verdict per target,
the command) and that exact search is exact (flat's recall is 1.0), never a speed: timings
on a shared CI machine are noise. The embeddings and the server's data directory are
made afresh in a temporary cache, so the test depends on no earlier run.

At 12,000 items the run takes every path a 20,000-item one does (two chunks of the data
step, the second one partial; the merge; the rebuild to IVF) with 40 % less embedding,
index building and inserting; the bulk import sends 2,000 images instead of 5,000.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.search.index_study import SEARCH_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "item_search.py"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FILTERS = ["none", "label (10 %)", "bucket (1 %)"]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table(text: str, starts: str) -> tuple[list[str], list[list[str]]]:
    """The columns and rows of the markdown table whose header line starts with `starts`."""
    lines = text.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith(starts))
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(cells(line))
    return cells(lines[header]), rows


# Six server starts and eleven 1 s wrk runs are most of it; several minutes when the
# machine is busy.
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs Debian's wrk (apt-get install wrk)")
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_quick_mode_at_12k_items_reports_every_table(tmp_path: Path) -> None:
    out = tmp_path / "item_search.md"
    command = [sys.executable, str(SCRIPT), "--items", "12000", "--quick", "--import-rows", "2000"]
    command += ["--cache", str(tmp_path / "cache"), "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout
    assert out.read_text() == text
    assert text.startswith("# Item search at 12,000 items\n\n- Commit: ")
    assert out.with_suffix(".png").stat().st_size > 0

    columns, builds = table(text, "| kind | structure |")
    assert "snapshot bytes/item" in columns and "RSS growth bytes/item" in columns
    assert [row[0] for row in builds] == ["flat", "hnsw", "ivf", "ivf-classes"]

    columns, searches = table(text, "| kind | setting | recall@10 |")
    assert columns == SEARCH_COLUMNS and len(columns) == 13
    assert [columns[i] for i in (2, 5, 6, 9)] == [
        "recall@10",
        "x flat (1 by 1)",
        "recall@10 label 10 %",
        "recall@10 bucket 1 %",
    ]
    assert [row[0] for row in searches].count("flat") == 1
    kinds = {"flat", "hnsw", "ivf", "ivf-classes", "hnsw (LiveIndex)", "ivf (LiveIndex)"}
    assert {row[0] for row in searches} == kinds
    assert {row[1] for row in searches if row[0] == "hnsw"} == {"efSearch 64", "efSearch 128"}
    assert all(len(row) == len(columns) for row in searches)
    flat = next(row for row in searches if row[0] == "flat")
    assert [flat[2], flat[6], flat[9]] == ["1.0000", "1.0000", "1.0000"]
    raw = json.loads(out.with_suffix(".json").read_text())
    (flat_raw,) = (s for s in raw["searches"] if s["kind"] == "flat")
    assert [flat_raw["per_filter"][f]["recall"] for f in FILTERS] == [1.0, 1.0, 1.0]

    _, versus = table(text, "| ivf-classes | recall@10 |")
    assert [row[0] for row in versus] == ["nprobe 1", "nprobe 3"]
    assert all(row[-1] in ("k-means", "classes") for row in versus)

    _, ready = table(text, "| setting | when | process start to /readyz 200 s |")
    assert [row[0] for row in ready][:3] == ["hnsw", "hnsw", "auto"]
    assert "kill -9" in ready[1][1]
    _, recall = table(text, "| filter | stored items asked | server recall@10 |")
    assert [row[0] for row in recall] == FILTERS

    columns, server = table(text, "| measurement | index | connections |")
    assert columns[4:7] == ["requests/s", "p50 ms", "p99 ms"]
    measured = {(row[0], row[2]) for row in server}
    for cell in [
        ("GET /neighbors", "1"),
        ("GET /neighbors", "8"),
        ("GET /neighbors label (10 %)", "1"),
        ("POST /neighbors bucket (1 %)", "1"),
        ("POST /items (8 images)", "1"),
    ]:
        assert cell in measured
    assert sum(row[0] == "POST /items (8 images)" for row in server) == 3
    assert all(row[8] == "0" for row in server), "no request may fail"

    _, imported = table(text, "| measurement | items | seconds | items/s |")
    assert imported[0][0].startswith("corel-import") and imported[0][1] == "2,000"

    _, targets = table(text, "| target | measured | target | verdict |")
    assert len(targets) >= 10
    assert all(row[3] in ("**PASS**", "**MISS**") for row in targets)
    assert "Reproduce: `python benchmarks/item_search.py --items 12000 --quick" in text
