"""What every source shares: the model's input it must fit, the `Rows` it yields, and
`Source`, whose `rows(start, stop, size)` reads rows start..stop-1 a batch at a time."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from service.importer.errors import ImportFailed

__all__ = [
    "ModelInput",
    "Reader",
    "Rows",
    "Source",
    "check_kind",
    "check_shape",
    "class_files",
    "labels_of",
    "skip",
]

# What each kind of model is fed, for the messages of a source that does not fit it
SOURCES_FOR = {
    "image": "an image folder, an .npz or Fashion-MNIST",
    "vector": "an .npz or a numeric .csv",
    "text": "a folder of .txt files, a .csv with a text column, or a .jsonl",
}


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ModelInput:
    """What the served model takes, from its manifest (GET /model)."""

    kind: Literal["image", "vector", "text"]
    shape: tuple[int, ...]  # one item, e.g. (1, 28, 28); a text model's (max_length,)
    resize: bool = False  # the manifest lets images of another size be resized

    def accepts(self, row_shape: tuple[int, ...]) -> bool:
        """The shape itself, H x W for one channel, or flat (C-order) rows of its size."""
        if self.kind == "text":  # token ids are the server's business: it takes strings
            return False
        grey = self.kind == "image" and self.shape[0] == 1 and row_shape == self.shape[1:]
        return row_shape in (self.shape, (math.prod(self.shape),)) or grey


@dataclass
class Rows:
    start: int  # row number of the first row
    values: np.ndarray | list[str]  # (n, ...) raw values, one row per item; or n texts
    labels: list[str | None]
    ids: list[str] | None = None  # the source's own ids; None: `{prefix}{row}`
    metadata: list[dict[str, Any]] | None = None


class Source(ABC):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = 0  # rows

    @property
    def name(self) -> str:
        """The default id prefix's stem."""
        return self.path.stem

    @abstractmethod
    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        """Rows start..stop-1, `size` at a time."""


def check_kind(where: str, kind: str, model: ModelInput) -> None:
    """Fail when a source of `kind` (image, vector or text) cannot feed the served model."""
    fits = kind == model.kind or (kind == "vector" and model.kind == "image")  # pixels as numbers
    if not fits:
        raise ImportFailed(
            f"{where} holds {'text' if kind == 'text' else kind + 's'}, but the served model "
            f"takes {'text' if model.kind == 'text' else model.kind + 's'} "
            f"{list(model.shape)} (GET /model): give it {SOURCES_FOR[model.kind]}, or serve "
            "a model of that kind"
        )


def check_shape(where: str, row_shape: tuple[int, ...], model: ModelInput) -> None:
    check_kind(where, "vector", model)
    if not model.accepts(row_shape):
        raise ImportFailed(
            f"{where} has rows of shape {list(row_shape)}; the served model takes "
            f"{list(model.shape)}"
        )


def class_files(path: Path, suffixes: set[str], what: str) -> list[tuple[Path, str | None]]:
    """(file, label) of the files with these suffixes directly in `path` (no label), then
    in each sub-folder (its name the label), sorted: a folder source's rows, in order."""

    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)

    found: list[tuple[Path, str | None]] = [(f, None) for f in files(path)]
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        found += [(f, folder.name) for f in files(folder)]
    if not found:
        raise ImportFailed(f"{path}: no {what} in it or in its class sub-folders")
    return found


def labels_of(values: Iterable[object]) -> list[str | None]:
    """Labels as the service takes them: text (numbers as their digits); empty: none."""
    return [str(value) or None for value in values]


def skip(f: Reader, count: int, chunk: int = 1 << 24) -> None:
    """Read past `count` bytes of a stream that cannot seek cheaply (a compressed member)."""
    while count > 0:
        got = len(f.read(min(chunk, count)))
        if got == 0:
            return
        count -= got
