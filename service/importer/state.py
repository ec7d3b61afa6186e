"""Where an import stands, in a small JSON file, so an interrupted import resumes.

The file records the rows acknowledged so far (`next_row`: every row before it is stored)
for one source, id prefix and server. It is rewritten (atomically: write, then rename)
after each acknowledged batch. It only saves time: without it a re-run sends every batch
again and the server answers 409 for those already stored, which count as skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from service.importer.errors import ImportFailed

__all__ = ["ImportState"]


@dataclass
class ImportState:
    source: str  # absolute path of the source
    id_prefix: str
    url: str
    total: int  # rows in the source
    next_row: int = 0  # rows before it are stored
    sent: int = 0  # over every run: stored by this importer
    skipped: int = 0  # over every run: found already stored (409)
    updated: str = field(default="")

    @classmethod
    def open(cls, path: Path, fresh: ImportState) -> ImportState:
        """The state in `path` if it is for the same import, else `fresh` (saved there now,
        so an unwritable path fails before anything is sent)."""
        if not path.exists():
            fresh.save(path)
            return fresh
        try:
            state = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ImportFailed(f"{path}: not an import state file ({exc}); delete it") from exc
        mine = (state.source, state.id_prefix, state.url, state.total)
        if mine != (fresh.source, fresh.id_prefix, fresh.url, fresh.total):
            raise ImportFailed(
                f"{path} is for another import ({state.source}, prefix {state.id_prefix!r}, "
                f"{state.url}, {state.total} rows): delete it to start over (items already "
                "stored are skipped), or give --state"
            )
        return state

    def advance(self, path: Path, rows: int, sent: int) -> None:
        self.next_row += rows
        self.sent += sent
        self.skipped += rows - sent
        self.save(path)

    def save(self, path: Path) -> None:
        self.updated = datetime.now(UTC).isoformat(timespec="seconds")
        partial = path.with_name(path.name + ".partial")
        try:
            partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
            os.replace(partial, path)
        except OSError as exc:
            raise ImportFailed(f"cannot write the state file {path} ({exc}); give --state") from exc
