"""Where the items come from, read a batch at a time: a folder of images, an .npz, a .csv,
or the Fashion-MNIST IDX gzip pair.

Every source numbers its rows 0..total-1 in a fixed order (the ids are `{prefix}{row}`) and
yields `Rows`: raw values in the model's units (pixels 0..255, feature units), shaped as
the model's input, with a label per row when the source has labels. Memory: the batches
being read, plus the labels (and ids) of the whole source, and for a folder its file list;
never the values of the whole source. A compressed .npz cannot be memory-mapped, so `x` is
decompressed as a stream from the archive, a batch at a time.
"""

from __future__ import annotations

from pathlib import Path

from service.importer.errors import ImportFailed
from service.importer.sources.base import ModelInput, Rows, Source
from service.importer.sources.csv_file import CsvFile
from service.importer.sources.fashion_mnist import FashionMnist
from service.importer.sources.image_folder import ImageFolder
from service.importer.sources.npz_file import NpzFile

__all__ = ["FashionMnist", "ModelInput", "Rows", "Source", "open_source"]


def open_source(path: Path, model: ModelInput) -> Source:
    """The source at `path` (folder, .npz or .csv), checked against the model's input."""
    if path.is_dir():
        return ImageFolder(path, model)
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file or folder")
    if path.suffix == ".npz":
        return NpzFile(path, model)
    if path.suffix == ".csv":
        return CsvFile(path, model)
    raise ImportFailed(f"{path}: expected an image folder, an .npz or a .csv file")
