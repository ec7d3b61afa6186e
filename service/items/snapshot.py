"""The item index snapshot's file format (the file is the data directory's `items.index`).

One file: the magic `COREL-IDX`, the header's length (uint32, little-endian), the header
(JSON: format, model id, index kind, dimension, watermark, vector count, and the payload's
sha256) and the payload, FAISS's serialised index. It is written atomically (temporary file,
fsync, rename), so a reader sees the old file or the new one, never half.

Kept apart from the FAISS index (index.py) so that the data directory's checks and backup
(service/datadir/) read a header without loading FAISS or an index.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, cast, get_args

from corel.files import atomic_write
from service.items.types import IndexKind

__all__ = [
    "SNAPSHOT_FORMAT",
    "SnapshotError",
    "read_index_snapshot",
    "read_snapshot",
    "read_snapshot_header",
    "write_snapshot",
]

SNAPSHOT_FORMAT = 2
_MAGIC = b"COREL-IDX"
_PREFIX = len(_MAGIC) + 4  # the magic and the header's length


class SnapshotError(Exception):
    """A snapshot is missing, truncated, corrupt, or of another model or dimension."""


def write_snapshot(
    path: Path,
    payload: bytes | memoryview,
    *,
    model_id: str,
    kind: IndexKind,
    dim: int,
    watermark: int,  # the highest seq the index was brought up to date with
    ntotal: int,
) -> None:
    header = json.dumps(
        {
            "format": SNAPSHOT_FORMAT,
            "model_id": model_id,
            "kind": kind,
            "dim": dim,
            "watermark": watermark,
            "ntotal": ntotal,
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
    ).encode()
    atomic_write(path, [_MAGIC + struct.pack("<I", len(header)) + header, payload])


def _header_size(path: Path, prefix: bytes) -> int:
    if not prefix.startswith(_MAGIC) or len(prefix) < _PREFIX:
        raise SnapshotError(f"{path}: not an item index snapshot")
    (size,) = struct.unpack("<I", prefix[len(_MAGIC) : _PREFIX])
    return int(size)


def read_snapshot_header(path: Path) -> dict[str, Any]:
    """A snapshot's header alone (model, kind, dim, ntotal), without reading the index."""
    try:
        with path.open("rb") as f:
            size = _header_size(path, f.read(_PREFIX))
            header: dict[str, Any] = json.loads(f.read(size))
            return header
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{path}: unreadable header ({exc})") from exc


def read_snapshot(path: Path) -> tuple[dict[str, Any], bytes]:
    """(header, payload), the payload checked against the header's checksum."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read it ({exc.strerror})") from exc
    size = _header_size(path, data[:_PREFIX])
    try:
        header = json.loads(data[_PREFIX : _PREFIX + size])
    except ValueError as exc:
        raise SnapshotError(f"{path}: unreadable header ({exc})") from exc
    payload = data[_PREFIX + size :]
    if header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path}: snapshot format {header.get('format')!r} is not supported")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise SnapshotError(f"{path}: checksum mismatch (truncated or corrupted)")
    return header, payload


def read_index_snapshot(path: Path, *, model_id: str, dim: int) -> tuple[IndexKind, bytes]:
    """(the index's kind, its serialised bytes), or SnapshotError saying why it cannot be
    used: unreadable, or made for another model or dimension."""
    header, payload = read_snapshot(path)
    for key, want in (("model_id", model_id), ("dim", dim)):
        if header.get(key) != want:
            raise SnapshotError(f"{path}: made for {key}={header.get(key)!r}, now {want!r}")
    kind = header.get("kind")
    if kind not in get_args(IndexKind):
        raise SnapshotError(f"{path}: unknown index kind {kind!r}")
    return cast(IndexKind, kind), payload
