"""The web page benchmark end to end on a few items: its tables, not its speed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs dataset-fashion-mnist"
)
def test_prints_the_map_and_page_times(tmp_path: Path) -> None:
    out = tmp_path / "web_page.md"
    run = subprocess.run(
        [sys.executable, "benchmarks/web_page.py", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in run.stdout.splitlines()
        if line.startswith("| GET") or line.startswith("| Try") or line.startswith("| Latent")
        or line.startswith("| Browse")
    ]  # fmt: skip
    assert [row[:3] for row in rows[:5]] == [
        ["GET /map?method=pca", "59", "computed, the server's first (imports scikit-learn)"],
        ["GET /map?method=pca", "60", "computed"],
        ["GET /map?method=pca", "60", "cached"],
        ["GET /map?method=tsne", "40", "computed"],
        ["GET /map?method=tsne", "40", "cached"],
    ]
    assert [row[0] for row in rows[5:]] == [
        "Try an item: page set up",
        "Browse items: 24 pictures shown",
        "Latent map: every item drawn",
        "Latent map: one redraw while zooming (60 points)",
    ]
    assert all(float(row[-1].replace(",", "")) > 0 for row in rows[5:])
    assert f"- Reproduce: `python benchmarks/web_page.py --quick --out {out}`" in run.stdout
    assert out.read_text() == run.stdout
