"""A .csv with a header row: a `label` column, an optional `id` column, and the features."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from service.importer.errors import ImportFailed
from service.importer.sources.base import ModelInput, Rows, Source, check_shape

__all__ = ["CsvFile"]


class CsvFile(Source):
    """A header row; a `label` column (optional), an `id` column (optional), and the
    feature columns, in the model's units."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path)
        try:
            with path.open(newline="") as f:
                reader = csv.reader(f)
                self.header = next(reader, [])
                self.total = sum(1 for row in reader if row)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ImportFailed(f"{path}: cannot read it as a .csv ({exc})") from exc
        self.label_col = self.header.index("label") if "label" in self.header else None
        self.id_col = self.header.index("id") if "id" in self.header else None
        self.feature_cols = [
            n for n, name in enumerate(self.header) if n not in (self.label_col, self.id_col)
        ]
        check_shape(f"{path}: the feature columns", (len(self.feature_cols),), model)

    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        with self.path.open(newline="") as f:
            reader = csv.reader(f)
            next(reader)
            body = (row for row in reader if row)
            for _ in range(start):
                next(body, None)
            for first in range(start, stop, size):
                yield self._parse(first, [next(body) for _ in range(min(size, stop - first))])

    def _parse(self, first: int, lines: list[list[str]]) -> Rows:
        try:
            values = np.array(
                [[float(line[n]) for n in self.feature_cols] for line in lines], np.float64
            )
        except (ValueError, IndexError) as exc:
            raise ImportFailed(
                f"{self.path}: rows {first}..{first + len(lines) - 1}: every column but label "
                f"and id must be a number ({exc})"
            ) from exc
        labels = [
            None if self.label_col is None else str(line[self.label_col]) or None for line in lines
        ]
        ids = None if self.id_col is None else [line[self.id_col] for line in lines]
        return Rows(first, values, labels, ids)
