"""Text for a text model: a folder of .txt files, a .csv with a `text` column, a .jsonl.

Each row is one text, sent as a `{"text": ...}` input (the server's tokenizer makes it
token ids, and keeps the first max_length tokens of a longer one). A batch ends at the
requested size or at TEXT_BATCH_BYTES of text, whichever comes first, so long documents
stay under the server's body limit; the loop acknowledges whatever size each batch has.
Texts are read as UTF-8 (undecodable bytes become U+FFFD, as `corel-train` reads them) and
stripped of surrounding white space; an empty one stops the import, naming its row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from service.importer.errors import ImportFailed
from service.importer.sources.base import ModelInput, Rows, Source, check_kind, class_files

__all__ = ["TEXT_BATCH_BYTES", "TextCsv", "TextFolder", "TextJsonl", "is_text_folder"]

TEXT_BATCH_BYTES = 8 * 1024 * 1024  # of UTF-8 text per request, under the 12 MiB budget


def is_text_folder(path: Path) -> bool:
    """.txt files directly in it or in its class sub-folders."""
    return any(path.glob("*.txt")) or any(path.glob("*/*.txt"))


def _clean(text: str, where: str) -> str:
    text = text.strip()
    if not text:
        raise ImportFailed(f"{where}: the text is empty; remove it or give it some text")
    return text


def _batches(
    start: int, stop: int, size: int, rows: Iterable[tuple[str, str | None, str | None, Any]]
) -> Iterator[Rows]:
    """Rows start..stop-1 from (text, label, id, metadata) tuples that begin at `start`:
    `size` at a time, or fewer when their text passes TEXT_BATCH_BYTES."""
    batch: list[tuple[str, str | None, str | None, Any]] = []
    first, used = start, 0
    for row in rows:
        if first + len(batch) >= stop:
            break
        batch.append(row)
        used += len(row[0].encode())
        if len(batch) >= size or used >= TEXT_BATCH_BYTES:
            yield _rows(first, batch)
            first, batch, used = first + len(batch), [], 0
    if batch:
        yield _rows(first, batch)


def _rows(first: int, batch: list[tuple[str, str | None, str | None, Any]]) -> Rows:
    ids = [i for _, _, i, _ in batch]
    metadata = [m for _, _, _, m in batch]
    return Rows(
        first,
        [text for text, _, _, _ in batch],
        [label for _, label, _, _ in batch],
        ids=None if ids[0] is None else [str(i) for i in ids],
        metadata=None if all(m is None for m in metadata) else [m or {} for m in metadata],
    )


class TextFolder(Source):
    """One sub-folder per class of .txt files, one item per file, the sub-folder's name its
    label; files directly in the folder have none. Each item's metadata records its file."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path)
        check_kind(f"{path} (a folder of .txt files)", "text", model)
        self.files = class_files(path, {".txt"}, ".txt files")
        self.total = len(self.files)

    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        def read() -> Iterator[tuple[str, str | None, str | None, Any]]:
            for file, label in self.files[start:stop]:
                try:
                    text = file.read_text(encoding="utf-8", errors="replace")
                except OSError as exc:
                    raise ImportFailed(f"{file}: cannot read it ({exc})") from exc
                name = file.relative_to(self.path).as_posix()
                yield _clean(text, str(file)), label, None, {"file": name}

        yield from _batches(start, stop, size, read())


class TextCsv(Source):
    """A header row with a `text` column; optional `label` and `id` columns (as in a
    numeric .csv); every other column goes into each item's metadata, as text."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path)
        check_kind(f"{path} (a .csv with a text column)", "text", model)
        try:
            with path.open(newline="", encoding="utf-8", errors="replace") as f:
                reader = csv.reader(f)
                self.header = next(reader, [])
                self.total = sum(1 for row in reader if row)
        except (OSError, csv.Error) as exc:
            raise ImportFailed(f"{path}: cannot read it as a .csv ({exc})") from exc
        self.text_col = self.header.index("text")
        self.label_col = self.header.index("label") if "label" in self.header else None
        self.id_col = self.header.index("id") if "id" in self.header else None
        own = (self.text_col, self.label_col, self.id_col)
        self.meta_cols = [(n, name) for n, name in enumerate(self.header) if n not in own]

    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        with self.path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            next(reader)
            body = (row for row in reader if row)
            for _ in range(start):
                next(body, None)
            yield from _batches(start, stop, size, self._parse(start, body))

    def _parse(
        self, start: int, lines: Iterable[list[str]]
    ) -> Iterator[tuple[str, str | None, str | None, Any]]:
        for row, line in enumerate(lines, start):
            if len(line) != len(self.header):
                raise ImportFailed(
                    f"{self.path}: row {row} has {len(line)} columns, the header "
                    f"{len(self.header)} (a text with a comma or a line break needs quotes)"
                )
            label = None if self.label_col is None else line[self.label_col] or None
            item_id = None if self.id_col is None else line[self.id_col]
            metadata = {name: line[n] for n, name in self.meta_cols} or None
            yield _clean(line[self.text_col], f"{self.path}: row {row}"), label, item_id, metadata


class TextJsonl(Source):
    """One JSON object a line: `text` (a string), optional `label` (a string or a number)
    and `id`; every other key goes into the item's metadata as it is. Blank lines are
    skipped. The whole file is checked before anything is sent."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path)
        check_kind(f"{path} (a .jsonl of texts)", "text", model)
        self.has_ids: bool | None = None
        for row, (number, obj) in enumerate(self._objects()):
            has_id = "id" in obj
            if self.has_ids is None:
                self.has_ids = has_id
            elif has_id != self.has_ids:
                raise ImportFailed(
                    f"{path}:{number}: give an 'id' on every line or on none (row {row})"
                )
            self.total = row + 1
        if not self.total:
            raise ImportFailed(f"{path}: no lines to import")

    def _objects(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, object) of each non-blank line, checked."""
        try:
            with self.path.open(encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    where = f"{self.path}:{number}"
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ImportFailed(f"{where}: not JSON ({exc})") from exc
                    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                        raise ImportFailed(
                            f"{where}: each line must be a JSON object with a string 'text' "
                            "(and optionally 'label', 'id' and other keys for the metadata)"
                        )
                    label = obj.get("label")
                    if label is not None and not isinstance(label, str | int | float):
                        raise ImportFailed(f"{where}: 'label' must be a string or a number")
                    _clean(obj["text"], where)
                    yield number, obj
        except OSError as exc:
            raise ImportFailed(f"{self.path}: cannot read it ({exc})") from exc

    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        def parse() -> Iterator[tuple[str, str | None, str | None, Any]]:
            for row, (_, obj) in enumerate(self._objects()):
                if row < start:
                    continue
                label = obj.pop("label", None)
                item_id = obj.pop("id", None)
                text = obj.pop("text").strip()
                yield (
                    text,
                    None if label is None else str(label) or None,
                    None if item_id is None else str(item_id),
                    obj or None,
                )

        yield from _batches(start, stop, size, parse())
