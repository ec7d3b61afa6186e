"""Where the items come from, read a batch at a time: a folder of images, an .npz, a .csv,
or the Fashion-MNIST IDX gzip pair; for a text model, a folder of .txt files, a .csv with a
`text` column, or a .jsonl.

Every source numbers its rows 0..total-1 in a fixed order (the ids are `{prefix}{row}`) and
yields `Rows`: raw values in the model's units (pixels 0..255, feature units), shaped as
the model's input (for a text model: the texts), with a label per row when the source has
labels. Memory: the batches
being read, plus the labels (and ids) of the whole source, and for a folder its file list;
never the values of the whole source. A compressed .npz cannot be memory-mapped, so `x` is
decompressed as a stream from the archive, a batch at a time.
"""

from __future__ import annotations

import csv
from pathlib import Path

from service.importer.errors import ImportFailed
from service.importer.sources.base import ModelInput, Rows, Source
from service.importer.sources.csv_file import CsvFile
from service.importer.sources.fashion_mnist import FashionMnist
from service.importer.sources.image_folder import ImageFolder, has_images
from service.importer.sources.npz_file import NpzFile
from service.importer.sources.text import TextCsv, TextFolder, TextJsonl, is_text_folder

__all__ = ["FashionMnist", "ModelInput", "Rows", "Source", "open_source"]


def open_source(path: Path, model: ModelInput) -> Source:
    """The source at `path` (folder, .npz, .csv or .jsonl), checked against the model's
    input. A folder is text when it holds .txt files (and no images: ImageFolder says so
    otherwise), a .csv when its header names a `text` column."""
    if path.is_dir():
        if not has_images(path) and (model.kind == "text" or is_text_folder(path)):
            return TextFolder(path, model)
        return ImageFolder(path, model)
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file or folder")
    if path.suffix == ".npz":
        return NpzFile(path, model)
    if path.suffix == ".csv":
        return TextCsv(path, model) if _csv_has_text(path) else CsvFile(path, model)
    if path.suffix == ".jsonl":
        return TextJsonl(path, model)
    raise ImportFailed(
        f"{path}: expected a folder, an .npz, a .csv or a .jsonl file (a .jsonl for text)"
    )


def _csv_has_text(path: Path) -> bool:
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            return "text" in next(csv.reader(f), [])
    except (OSError, csv.Error) as exc:
        raise ImportFailed(f"{path}: cannot read it as a .csv ({exc})") from exc
