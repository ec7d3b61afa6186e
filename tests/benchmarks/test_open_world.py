"""The open-world benchmark's quick mode end to end: one split, one short training, every
metric in its range, the choices made on validation, the encoder cached for a rerun."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "open_world.py"
FAR_SETS = [
    "uniform noise",
    "gaussian noise",
    "all black",
    "all white",
    "inverted",
    "digits 28x28",
    "rotated 90",
]


# about 30 s wall on 2 shared cores: one epoch on 3,000 items, then the scores
@pytest.mark.slow
def test_quick_mode_measures_every_score_on_every_set(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path), "--cache", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "- Reproduce: `python benchmarks/open_world.py --quick --out " in run.stdout
    assert (
        (tmp_path / "open_world_quick.md")
        .read_text()
        .startswith("# Open-world benchmark (test split)\n\n- Commit: ")
    )

    saved = json.loads((tmp_path / "open_world_quick.json").read_text())
    (split,) = saved["splits"]
    assert split["held_out"] == ["Sandal", "Shirt"]
    for part in ("val", "test"):
        table = split[part]
        assert {"max cosine", "kNN k=1 conv", "Mahalanobis f1", "input guard (PCA)"} <= set(table)
        for scores in table.values():
            assert list(scores) == ["held-out classes", *FAR_SETS]
            for auroc, fpr in scores.values():
                assert 0.0 <= auroc <= 1.0 and 0.0 <= fpr <= 1.0
    # the choice is one of the candidates, made on validation figures
    assert saved["chosen"]["score"] in split["val"]
    # the input guard alone tells noise and blank-white images from clothes
    assert split["test"]["input guard (PCA)"]["uniform noise"][0] > 0.95
    assert split["test"]["input guard (PCA)"]["all white"][0] > 0.95

    operating = split["operating_point"]["kNN k=1 conv"]
    assert 0.5 < operating["seen_accepted"] <= 1.0
    assert operating["flagged"]["uniform noise"] > 0.9

    few = split["few_shot"]["test"]
    assert set(few["mean prototype on h (today)"]) == {"1", "5"}
    for by_k in few.values():
        for figures in by_k.values():
            assert 0.0 <= figures["new"] <= 1.0 and 0.0 <= figures["seen"] <= 1.0
    # the gated prototypes keep the known classes' accuracy within 2 points of before
    gated = few["centred conv prototype, gated, capture 0.005"]["5"]
    assert gated["seen"] >= split["closed_set_accuracy"] - 0.02


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("open_world", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["open_world"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_cache_key_keeps_default_encoders_and_tells_objectives_apart() -> None:
    import hashlib

    open_world = load_script()
    default = open_world.split_config(open_world.Protocol())
    # the key of the default objective is the one written before the auxiliary fields existed
    values = {k: v for k, v in default.to_dict().items() if not k.startswith("aux_")}
    before = hashlib.sha256(json.dumps(["pullover-boot", values], sort_keys=True).encode())
    assert open_world.cache_key("pullover-boot", default) == before.hexdigest()[:10]
    keys = {
        open_world.cache_key(
            "pullover-boot", open_world.split_config(open_world.Protocol(objective=o))
        )
        for o in (
            (),
            (("aux_loss", "instance"),),
            (("aux_loss", "outlier"),),
            (("aux_loss", "outlier"), ("aux_weight", 0.5)),
            (("augment", True),),
        )
    }
    assert len(keys) == 5
    assert open_world.Protocol(objective=(("aux_loss", "outlier"), ("aux_weight", 0.5))).tag() == (
        "outlier-weight0.5"
    )
