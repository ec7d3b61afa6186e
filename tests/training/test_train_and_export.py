"""Training on digits lands far above chance, and the ONNX export reproduces torch."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from corel.bundle import load_bundle
from training.config import TrainConfig
from training.data import load_dataset
from training.evaluate import onnx_embed
from training.export import check_parity, export_onnx
from training.train import train


@pytest.fixture(scope="module")
def digits_run():
    data = load_dataset("digits", data_dir="", seed=0)
    return train(TrainConfig(dataset="digits", epochs=8, seed=0), data, progress=False), data


def test_short_training_on_digits_lands_far_above_chance(digits_run) -> None:
    result, _ = digits_run
    assert result.best_val_accuracy > 0.85  # chance is 0.10
    assert len(result.history) == 8
    best = max(result.history, key=lambda row: row["val_accuracy"])
    assert result.best_epoch == best["epoch"]


def test_onnx_export_matches_torch_on_real_inputs(digits_run, tmp_path: Path) -> None:
    result, data = digits_run
    path = tmp_path / "encoder.onnx"
    export_onnx(result.encoder, data.shape, path)
    diff = check_parity(result.encoder, path, data.model_input(data.x_test))
    assert diff < 1e-4


def test_onnx_export_has_named_io_and_a_dynamic_batch(digits_run, tmp_path: Path) -> None:
    result, data = digits_run
    path = tmp_path / "encoder.onnx"
    export_onnx(result.encoder, data.shape, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["embedding"]
    for n in (1, 7, 300):
        x = data.model_input(data.x_test[:n])
        assert onnx_embed(path, x).shape == (n, 128)
    assert not list(tmp_path.glob("*.data")), "weights must live inside the one .onnx file"


def test_training_is_reproducible_with_a_seed() -> None:
    data = load_dataset("digits", data_dir="", seed=0)
    config = TrainConfig(dataset="digits", epochs=1, seed=3, max_train=256)
    first, second = train(config, data, progress=False), train(config, data, progress=False)
    for a, b in zip(first.encoder.parameters(), second.encoder.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    data = load_dataset("digits", data_dir="", seed=0)
    checkpoint = tmp_path / "checkpoint.pt"
    train(
        TrainConfig(dataset="digits", epochs=2, seed=0), data, checkpoint=checkpoint, progress=False
    )
    resumed = train(
        TrainConfig(dataset="digits", epochs=2, seed=0),
        data,
        checkpoint=checkpoint,
        resume=True,
        progress=False,
    )
    assert len(resumed.history) == 2  # nothing left to run, best weights restored
    with pytest.raises(ValueError, match="different config"):
        train(
            TrainConfig(dataset="digits", epochs=3, seed=1),
            data,
            checkpoint=checkpoint,
            resume=True,
            progress=False,
        )


def test_exported_bundle_scores_like_the_trained_model(digits_bundle: Path) -> None:
    bundle = load_bundle(digits_bundle)
    metrics = bundle.manifest.metrics
    assert metrics["accuracy"] > 0.85
    assert metrics["kmeans_accuracy"] > 0.7
    assert -1.0 <= metrics["silhouette"] <= 1.0
    assert np.isfinite(list(metrics.values())).all()
    for name in ("report.md", "training_curves.png", "projections.png", "metrics.json"):
        assert (digits_bundle / name).stat().st_size > 0
