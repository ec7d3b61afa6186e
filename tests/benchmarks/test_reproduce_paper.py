"""The paper benchmark's quick mode end to end on digits: every loss in the table, cached."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "reproduce_paper.py"
TITLES = ["CCE", "Center loss", "Gaussian-COREL", "Cosine-COREL", "Siamese (contrastive)"]


def run_quick(out: Path) -> subprocess.CompletedProcess[str]:
    # two epochs: the table's shape and the cache are under test, not how well digits trains
    command = [sys.executable, str(SCRIPT), "--quick", "--epochs", "2", "--seeds", "0", "1"]
    return subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


# 55 s on the shared 2-core machine at load 3-4: mostly the spawned workers' imports and the
# seed-0 t-SNEs; the 2 epochs per run are seconds
@pytest.mark.slow
def test_quick_mode_writes_a_table_with_every_loss_and_resumes_from_its_cache(
    tmp_path: Path,
) -> None:
    first = run_quick(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    table_lines = [line for line in first.stdout.splitlines() if line.startswith("| ")]
    assert table_lines[0].startswith("| loss | λ | test acc | K-Means acc | GMM acc | ARI |")
    for title in TITLES:
        row = next(line for line in table_lines if line.startswith(f"| {title} |"))
        assert " ± " in row and row.rstrip().endswith("| 2 |")  # two seeds in every row
    assert "| CCE | – |" in first.stdout and "| 0.9124 | 0.7246 | 0.2808 |" in first.stdout
    assert "Reproduce with: python benchmarks/reproduce_paper.py --quick --epochs 2" in first.stdout

    saved = json.loads((tmp_path / "reproduce_paper.json").read_text())
    assert (saved["dataset"], saved["epochs"]) == ("digits", 2)
    assert len(saved["runs"]) == 10
    for run in saved["runs"]:
        assert 0.0 <= run["headline"]["accuracy"] <= 1.0
        assert {
            "kmeans_accuracy",
            "gmm_accuracy",
            "ari",
            "v_measure",
            "silhouette",
            "kmeans_accuracy_raw",
        } <= set(run["headline"])
    assert "| Cosine-COREL | 0.15 |" in (tmp_path / "reproduce_paper.md").read_text()
    assert (tmp_path / "tsne_test.png").stat().st_size > 0
    assert len(list((tmp_path / "tsne").glob("*-seed0.npz"))) == 5

    # a second invocation trains nothing: every run comes from the per-run cache
    started = time.perf_counter()
    second = run_quick(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [line for line in second.stdout.splitlines() if line.startswith("| ")] == table_lines
    assert "epoch 1:" not in second.stderr
    assert "10 of 10 runs read from the cache" in second.stderr  # no worker started for them
    assert time.perf_counter() - started < 30
