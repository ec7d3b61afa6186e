"""Datasets: Fashion-MNIST from IDX files, digits, and a user's folder, .npz and .csv."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import FASHION_DIR
from training.data import DatasetError, load_dataset, read_idx


def test_fashion_mnist_has_the_papers_splits() -> None:
    data = load_dataset("fashion-mnist", data_dir=FASHION_DIR, seed=0)
    assert data.x_train.shape == (55_000, 1, 28, 28)
    assert data.x_val.shape == (5_000, 1, 28, 28)
    assert data.x_test.shape == (10_000, 1, 28, 28)
    assert data.x_train.max() == 255.0 and data.scale == pytest.approx(1 / 255)
    assert data.labels[9] == "Ankle boot"
    again = load_dataset("fashion-mnist", data_dir=FASHION_DIR, seed=0)
    assert np.array_equal(data.y_val, again.y_val)  # the split is fixed by the seed


def test_missing_fashion_mnist_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))


def test_read_idx_reads_what_was_written(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x.idx.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 0x08, 3, 2, 3, 4) + images.tobytes())
    assert np.array_equal(read_idx(path), images)


def test_digits_are_split_into_train_val_and_test() -> None:
    data = load_dataset("digits", data_dir="")
    total = len(data.x_train) + len(data.x_val) + len(data.x_test)
    assert total == 1797 and data.shape == (1, 8, 8) and len(data.labels) == 10


def test_image_folder_one_subfolder_per_class(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(10):
            pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    data = load_dataset(str(tmp_path), data_dir="", val_size=2)
    assert data.labels == ["cat", "dog"] and data.kind == "image" and data.shape == (1, 12, 12)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 20


def test_colour_images_keep_three_channels_and_odd_sizes_are_resized(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    for name in ("red", "blue"):
        (tmp_path / name).mkdir()
        for i in range(6):
            size = (16, 12) if i else (20, 20)  # one image a class of another size
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(tmp_path / name / f"{i}.png")
    Image.open(tmp_path / "red" / "1.png").convert("L").save(tmp_path / "blue" / "grey.png")

    data = load_dataset(str(tmp_path), data_dir="", val_size=2)

    assert data.shape == (3, 12, 16)  # C x H x W, the most common size
    everything = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert len(everything) == 13
    assert "2 of 13 images resized to 16x12" in caplog.text
    greys = [x for x in everything if np.array_equal(x[0], x[1]) and np.array_equal(x[1], x[2])]
    assert len(greys) == 1  # the grey one among colour images: three equal channels


def test_npz_with_string_labels_becomes_a_vector_dataset(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(5.0, 2.0, (50, 6)).astype(np.float32)
    y = np.array(["a", "b"] * 25)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_dataset(str(tmp_path / "d.npz"), data_dir="", val_size=5)
    assert data.kind == "vector" and data.shape == (6,) and data.labels == ["a", "b"]
    standardised = data.model_input(data.x_train)
    assert abs(float(standardised.mean())) < 0.5 and 0.5 < float(standardised.std()) < 1.5


def test_csv_with_a_label_column(tmp_path: Path) -> None:
    rows = ["f1,label,f2"] + [f"{i},{'x' if i % 2 else 'y'},{i * 2}" for i in range(20)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    data = load_dataset(str(tmp_path / "d.csv"), data_dir="", val_size=2)
    assert data.shape == (2,) and data.labels == ["x", "y"]


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(DatasetError, match="use fashion-mnist, digits, wordnet-nouns"):
        load_dataset("imagenet", data_dir="")
