"""Fashion-MNIST from its IDX gzip pair (Debian's dataset-fashion-mnist), streamed."""

from __future__ import annotations

import gzip
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from service.importer.errors import ImportFailed
from service.importer.sources.base import (
    ModelInput,
    Reader,
    Rows,
    Source,
    check_kind,
    check_shape,
    skip,
)

__all__ = ["FASHION_MNIST_LABELS", "FashionMnist"]

# The class names of the IDX label numbers (the same list as training/data.py, which the
# serving install does not need).
FASHION_MNIST_LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class FashionMnist(Source):
    """A split of Fashion-MNIST from its IDX gzip pair (Debian's dataset-fashion-mnist)."""

    def __init__(self, folder: Path, split: str, model: ModelInput) -> None:
        images, labels = (folder / name for name in FASHION_MNIST_FILES[split])
        super().__init__(images)
        if model.kind == "text":  # (pixels as features fit a vector model of their size)
            check_kind(f"{folder} (Fashion-MNIST)", "image", model)
        self.split = split
        if not images.is_file() or not labels.is_file():
            raise ImportFailed(
                f"{folder} has no {images.name} and {labels.name}: give the folder of the "
                "Fashion-MNIST IDX .gz files (Debian: /usr/share/datasets/fashion-mnist)"
            )
        with _open_idx(labels) as f:
            _idx_dims(f, labels)
            self.y = np.frombuffer(f.read(), np.uint8)
        with _open_idx(images) as f:
            self.total, *size = _idx_dims(f, images)
        if len(self.y) != self.total or (self.y >= len(FASHION_MNIST_LABELS)).any():
            raise ImportFailed(f"{labels}: not the labels (0..9) of the {self.total} images")
        self.row_shape = tuple(size)
        check_shape(str(images), self.row_shape, model)

    @property
    def name(self) -> str:
        return f"fashion-mnist-{self.split}"

    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        row_bytes = math.prod(self.row_shape)
        with _open_idx(self.path) as f:
            _idx_dims(f, self.path)
            skip(f, start * row_bytes)
            for first in range(start, stop, size):
                n = min(size, stop - first)
                values = np.frombuffer(f.read(n * row_bytes), np.uint8).reshape(n, *self.row_shape)
                labels: list[str | None] = [
                    FASHION_MNIST_LABELS[k] for k in self.y[first : first + n]
                ]
                yield Rows(first, values, labels)


def _open_idx(path: Path) -> gzip.GzipFile:
    try:
        return gzip.open(path, "rb")
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot open it ({exc})") from exc


def _idx_dims(f: Reader, path: Path) -> list[int]:
    """Read an IDX header (the MNIST family's format): the dimensions of its uint8 array."""
    try:
        zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        return list(struct.unpack(f">{ndim}I", f.read(4 * ndim)))
    except (OSError, ValueError, struct.error) as exc:
        raise ImportFailed(f"{path}: not an IDX gzip file ({exc})") from exc
