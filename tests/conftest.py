"""Fixtures shared by every test package: real bundles and real data, no mocks.

- `digits_training`: a tiny Cosine-COREL model trained on scikit-learn's digits in seconds,
  once per session, and its data.
- `digits_bundle`: that model exported as a bundle, through the same code path as
  `corel-train`.
- `default_bundle`: the shipped `models/fashion-mnist-cosine`.
- `fashion_test`: the Fashion-MNIST test split in raw pixels (needs Debian's
  dataset-fashion-mnist, which `scripts/dev.sh test` installs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:  # torch loads only when a test trains
    from training.data import Dataset
    from training.train import TrainResult

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO / "models" / "fashion-mnist-cosine"
# the shipped text model; COREL_TEST_TEXT_BUNDLE runs the text tests on another one
TEXT_BUNDLE = Path(os.environ.get("COREL_TEST_TEXT_BUNDLE", REPO / "models" / "wordnet-cosine"))
FASHION_DIR = os.environ.get("COREL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def digits_training() -> tuple[TrainResult, Dataset]:
    """One Cosine-COREL training on digits (12 epochs, seed 0) and its data, shared by the
    bundle below and the training tests, so the session trains on digits once."""
    from training.config import TrainConfig
    from training.data import load_dataset
    from training.train import train

    # one torch thread: for these tiny batches several times faster than torch's default here
    config = TrainConfig(dataset="digits", loss="cosine", epochs=12, seed=0, threads=1)
    data = load_dataset("digits", data_dir="", seed=0)
    return train(config, data, progress=False), data


@pytest.fixture(scope="session")
def digits_bundle(
    digits_training: tuple[TrainResult, Dataset], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from training.export import export_bundle

    result, data = digits_training
    out = tmp_path_factory.mktemp("bundles") / "digits-cosine"
    # no figures: nothing asserts on them, and their t-SNE costs seconds
    export_bundle(result, data, out, name="digits-cosine", command="tests/conftest.py", plots=False)
    return out


@pytest.fixture(scope="session")
def default_bundle() -> Path:
    assert (DEFAULT_BUNDLE / "manifest.json").is_file(), f"{DEFAULT_BUNDLE} is missing"
    return DEFAULT_BUNDLE


@pytest.fixture(scope="session")
def fashion_test() -> tuple[np.ndarray, np.ndarray]:
    """(images (10000, 1, 28, 28) float32 in 0..255, labels (10000,) int64)."""
    from training.data import load_fashion_mnist_split

    return load_fashion_mnist_split(FASHION_DIR, "test")
