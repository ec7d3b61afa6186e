"""Files written so that a crash leaves the old version or the new one, never half of either."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir"]


def atomic_write(path: Path, data: bytes | Sequence[bytes | memoryview]) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, rename it over `path`, and
    fsync the folder so the rename itself survives a power cut.

    `data` may be parts, written one after another without joining them: an item index
    snapshot's payload is hundreds of MB at 1M items, copied under the GIL when joined."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            for part in [data] if isinstance(data, bytes) else data:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half a file behind
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
