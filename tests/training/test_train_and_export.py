"""Training on digits lands far above chance, and the ONNX export reproduces torch."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.external_data_helper import uses_external_data

from corel.bundle import ENCODER_FILE, load_bundle
from training.config import TrainConfig
from training.data import Dataset, load_dataset
from training.evaluate import OnnxEncoder, onnx_embed
from training.export import check_parity
from training.train import TrainResult, train


@pytest.fixture(scope="module")
def digits_run(digits_training: tuple[TrainResult, Dataset]) -> tuple[TrainResult, Dataset]:
    return digits_training  # the session's one digits training (tests/conftest.py)


def test_short_training_on_digits_lands_far_above_chance(digits_run) -> None:
    result, _ = digits_run
    assert result.best_val_accuracy > 0.85  # chance is 0.10
    assert len(result.history) == result.config.epochs == 12
    best = max(result.history, key=lambda row: row.val_accuracy)
    assert (result.best_epoch, result.best_val_accuracy) == (best.epoch, best.val_accuracy)


@pytest.fixture(scope="module")
def exported(digits_bundle: Path) -> Path:
    # digits_bundle exported digits_run's encoder with export_onnx; a second export of the
    # same encoder would cost seconds and test nothing more
    return digits_bundle / ENCODER_FILE


def test_onnx_export_matches_torch_on_real_inputs(digits_run, exported: Path) -> None:
    result, data = digits_run
    diff = check_parity(result.encoder, OnnxEncoder(exported), data.model_input(data.x_test))
    assert diff < 1e-4


def test_onnx_export_has_named_io_and_a_dynamic_batch(digits_run, exported: Path) -> None:
    _, data = digits_run
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    # the embedding, and the features the open-set checks use (bundle format 2)
    assert [o.name for o in session.get_outputs()] == ["embedding", "features"]
    for n in (1, 7, 300):
        x = data.model_input(data.x_test[:n])
        assert onnx_embed(exported, x).shape == (n, 128)
    model = onnx.load(str(exported), load_external_data=False)
    assert model.graph.initializer, "the encoder has weights"
    assert not any(uses_external_data(t) for t in model.graph.initializer), (
        "weights must live inside the one .onnx file"
    )


def test_training_is_reproducible_with_a_seed() -> None:
    data = load_dataset("digits", data_dir="", seed=0)
    config = TrainConfig(dataset="digits", epochs=1, seed=3, max_train=256, threads=1)
    first, second = train(config, data, progress=False), train(config, data, progress=False)
    for a, b in zip(first.encoder.parameters(), second.encoder.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    data = load_dataset("digits", data_dir="", seed=0)
    checkpoint = tmp_path / "checkpoint.pt"
    config = TrainConfig(dataset="digits", epochs=2, seed=0, max_train=512, threads=1)
    first = train(config, data, checkpoint=checkpoint, progress=False)
    assert not list(tmp_path.glob("*.tmp")), "the checkpoint is renamed into place"
    resumed = train(config, data, checkpoint=checkpoint, resume=True, progress=False)
    assert resumed.history == first.history  # nothing left to run, best weights restored
    assert resumed.best_epoch == first.best_epoch
    for a, b in zip(first.encoder.parameters(), resumed.encoder.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="different config"):
        other = TrainConfig(dataset="digits", epochs=3, seed=1, max_train=512, threads=1)
        train(other, data, checkpoint=checkpoint, resume=True, progress=False)


def test_exported_bundle_scores_like_the_trained_model(digits_bundle: Path) -> None:
    bundle = load_bundle(digits_bundle)
    metrics = bundle.manifest.metrics
    assert metrics["accuracy"] > 0.85
    assert metrics["kmeans_accuracy"] > 0.7
    assert -1.0 <= metrics["silhouette"] <= 1.0
    assert np.isfinite(list(metrics.values())).all()
    for name in ("report.md", "metrics.json"):
        assert (digits_bundle / name).stat().st_size > 0
    # the fixture leaves the figures out; corel-train draws them (test_cli.py)
    assert "projections.png" not in bundle.manifest.files
    assert "](projections.png)" not in (digits_bundle / "report.md").read_text()
