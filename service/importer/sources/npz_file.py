"""An .npz: `x` (N, ...) raw values, optional `y` (N,) labels and `ids` (N,).

`x` is read as a stream from the archive, a batch at a time: a compressed .npz cannot be
memory-mapped. `y` and `ids` are loaded whole (one value per row).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from service.importer.errors import ImportFailed
from service.importer.sources.base import (
    ModelInput,
    Reader,
    Rows,
    Source,
    check_shape,
    labels_of,
    skip,
)

__all__ = ["NpzFile"]


class NpzFile(Source):
    """`x` (N, ...) raw values; optional `y` (N,) labels, numbers or strings; optional `ids`."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                names = set(data.files)
                if "x" not in names:
                    raise ImportFailed(f"{path}: an .npz to import needs an array 'x'")
                self.y = data["y"] if "y" in names else None
                self.ids = data["ids"] if "ids" in names else None
            with zipfile.ZipFile(path) as archive, archive.open("x.npy") as f:
                shape, self.dtype = _npy_header(f, path)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:  # ValueError: pickled arrays
            raise ImportFailed(f"{path}: cannot read it as an .npz ({exc})") from exc
        self.total, self.row_shape = shape[0], shape[1:]
        check_shape(f"{path}: x", self.row_shape, model)
        for key, array in (("y", self.y), ("ids", self.ids)):
            if array is not None and array.shape != (self.total,):
                raise ImportFailed(
                    f"{path}: {key} has shape {list(array.shape)}, x has N={shape[0]}"
                )

    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        row_bytes = math.prod(self.row_shape) * self.dtype.itemsize
        with zipfile.ZipFile(self.path) as archive, archive.open("x.npy") as f:
            _npy_header(f, self.path)
            skip(f, start * row_bytes)
            for first in range(start, stop, size):
                n = min(size, stop - first)
                data = f.read(n * row_bytes)
                if len(data) != n * row_bytes:
                    raise ImportFailed(f"{self.path}: x ends before row {first + n}")
                values = np.frombuffer(data, self.dtype).reshape(n, *self.row_shape)
                labels = labels_of(self.y[first : first + n] if self.y is not None else [""] * n)
                ids = None if self.ids is None else [str(i) for i in self.ids[first : first + n]]
                yield Rows(first, values, labels, ids)


def _npy_header(f: Reader, path: Path) -> tuple[tuple[int, ...], np.dtype[Any]]:
    version = np.lib.format.read_magic(f)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read(f)
    if fortran_order and len(shape) > 1:
        raise ImportFailed(
            f"{path}: x is stored in Fortran order and cannot be read by rows; save "
            "np.ascontiguousarray(x) instead"
        )
    if dtype.kind not in "uif" or len(shape) < 2:
        raise ImportFailed(
            f"{path}: x must be an array of numbers (N, ...), got {dtype} {list(shape)}"
        )
    return tuple(shape), dtype
