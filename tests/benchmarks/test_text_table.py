"""The text table's quick mode end to end: a 2,000-item sample of each corpus, 1 epoch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "text_table.py"
TITLES = ["CCE", "Center loss", "Gaussian-COREL", "Cosine-COREL", "Siamese (contrastive)"]


# about 40 s on the shared 2-core machine: 15 one-epoch runs on 2,000-item samples
@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/usr/share/wordnet/data.noun").is_file()
    or not Path("/usr/share/games/fortunes").is_dir(),
    reason="needs Debian's wordnet-base and fortunes (scripts/dev.sh test installs them)",
)
def test_quick_mode_writes_every_block_with_every_loss(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "text_table.md").read_text()
    assert text.startswith("# The COREL paper's text table")
    assert "- Reproduce: `python benchmarks/text_table.py --quick --out" in text
    for block in ("WordNet nouns, text-ffnn", "fortunes, text-ffnn", "WordNet nouns, text-cnn"):
        assert f"## {block}" in text
    for title in TITLES:
        rows = [line for line in text.splitlines() if line.startswith(f"| {title} |")]
        assert len(rows) == 6  # three blocks, normalised and raw
    assert "| Cosine-COREL | 0.5 |" in text
    assert "## Does Cosine-COREL's clusterability claim hold on text here?" in text
    saved = json.loads((tmp_path / "text_table.json").read_text())
    assert saved["provenance"]["command"].startswith("python benchmarks/text_table.py --quick")
    assert len(saved["runs"]) == 15 and not saved["missing_runs"]
    assert set(saved["claim"]) == {"wordnet-ffnn", "fortunes-ffnn", "wordnet-cnn"}
    for run in saved["runs"]:
        assert 0.0 <= run["headline"]["accuracy"] <= 1.0
        assert run["metrics"]["raw"]["kmeans"]["accuracy"] > 0.0
