"""`corel-train` and `corel-eval` end to end, as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corel.bundle import load_bundle
from training.config import TrainConfig


def run_cli(module_app: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = f"from training.cli import {module_app}; {module_app}()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cli") / "digits-gaussian"
    done = run_cli(
        "train_app",
        *("--dataset", "digits", "--loss", "gaussian", "--epochs", "3", "--seed", "1"),
        *("--threads", "1", "--out", str(out), "--quiet"),
    )
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


@pytest.mark.slow
def test_train_writes_a_loadable_bundle_and_prints_its_metrics(trained) -> None:
    out, printed = trained
    bundle = load_bundle(out)
    assert bundle.manifest.loss == {"name": "gaussian_corel", "lam": 0.85, "gamma": 0.5}
    assert bundle.manifest.class_rule == "euclidean"
    assert bundle.manifest.training["command"].startswith("corel-train --dataset digits")
    config = TrainConfig(dataset="digits", loss="gaussian", epochs=3, seed=1, threads=1)
    assert bundle.manifest.training["config"] == config.to_dict()
    assert printed["accuracy"] == bundle.manifest.metrics["accuracy"]
    assert (out / "checkpoint.pt").is_file()  # resumable, and not part of the bundle
    assert "checkpoint.pt" not in bundle.manifest.files
    for figure in ("projections.png", "training_curves.png"):  # the CLI draws the figures
        assert figure in bundle.manifest.files
        assert f"]({figure})" in (out / "report.md").read_text()


@pytest.mark.slow
def test_eval_rescores_a_bundle_with_onnxruntime_alone(trained, tmp_path: Path) -> None:
    out, printed = trained
    # no plots: their t-SNE is a third of this command's time, and corel-train above
    # already draws them through the same code
    report = ("--report", str(tmp_path / "report"), "--no-plots")
    done = run_cli("eval_app", str(out), *report, "--quiet")
    assert done.returncode == 0, done.stderr
    rescored = json.loads(done.stdout)
    assert rescored["dataset"] == "digits"
    assert rescored["accuracy"] == pytest.approx(printed["accuracy"], abs=1e-6)
    assert rescored["kmeans_accuracy"] == pytest.approx(printed["kmeans_accuracy"], abs=1e-6)
    assert (tmp_path / "report" / "report.md").is_file()
    assert not (tmp_path / "report" / "projections.png").exists()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics.keys() == json.loads((out / "metrics.json").read_text()).keys()


def test_eval_names_a_broken_bundle(tmp_path: Path) -> None:
    done = run_cli("eval_app", str(tmp_path), "--quiet")
    assert done.returncode == 2
    assert "no manifest.json" in done.stderr


def test_train_explains_a_bad_option() -> None:
    done = run_cli("train_app", "--loss", "softmax", "--out", "/tmp/never", "--quiet")
    assert done.returncode == 2
    assert "'softmax' is not one of 'cosine', 'gaussian', 'cce', 'center', 'contrastive'" in (
        done.stderr
    )
    assert not Path("/tmp/never").exists()


def test_train_help_shows_an_example() -> None:
    done = run_cli("train_app", "--help")
    assert done.returncode == 0
    assert "corel-train --dataset fashion-mnist --loss cosine" in done.stdout
    assert "corel-train --preset fashion-mnist-cosine" in done.stdout
