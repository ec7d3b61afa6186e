"""A check of SQLite's write-ahead log (items.sqlite3-wal) before the store is opened.

When SQLite opens a database whose WAL holds frames, it replays them up to the first frame
whose checksum fails, and drops that frame and every one after it without a word: a few
damaged bytes in the log after a crash silently lose the transactions committed after
them, acknowledged or not. This reads the log as SQLite would (https://sqlite.org/
fileformat2.html#the_write_ahead_log) and says whether it is damaged in a way that loses a
commit. The file is only read.

What it catches: a damaged WAL header while frames follow it (SQLite would ignore the
whole log), and a damaged frame followed by a commit that is still whole (each frame's
checksum is checked from the values stored in the frame before it, so a commit after the
damage is still recognised). What it cannot tell from a crash: damage in the last
transaction of the log with no whole commit after it, the shape a write torn by a power
cut leaves (that transaction was never acknowledged with synchronous=FULL, or was, and its
commit frame itself is damaged: the two look the same); a frame whose bytes changed but
whose checksum still passes (1 in 2^64); damage to the 8 checksum bytes of the frame just
before a commit (the commit can then not be told from garbage); a log truncated or
deleted outright.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["wal_damage"]

MAGIC_LE, MAGIC_BE = 0x377F0682, 0x377F0683
HEADER, FRAME_HEADER = 32, 24


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def wal_damage(wal: Path) -> str | None:
    """Why replaying this WAL would drop a committed transaction; None if it would not."""
    if not wal.exists():
        return None
    data = wal.read_bytes()
    if len(data) < HEADER:
        return None  # no header was ever completed: no frame can have been committed
    magic, _, page_size, _, salt1, salt2, c0, c1 = struct.unpack(">8I", data[:HEADER])
    frame_size = FRAME_HEADER + page_size
    frames = (len(data) - HEADER) // frame_size
    big_endian = magic == MAGIC_BE
    if magic not in (MAGIC_LE, MAGIC_BE) or _checksum(data[:24], 0, 0, big_endian) != (c0, c1):
        if any(data[HEADER:]):
            return "its header is damaged, so SQLite would ignore every frame after it"
        return None  # nothing was ever written after it
    previous = (c0, c1)
    damaged_at: int | None = None  # the first frame that fails
    for n in range(frames):
        at = HEADER + n * frame_size
        head = data[at : at + FRAME_HEADER]
        _, commit_size, f_salt1, f_salt2, f0, f1 = struct.unpack(">6I", head)
        if (f_salt1, f_salt2) != (salt1, salt2):
            break  # a frame of an earlier log: the end of this one
        body = head[:8] + data[at + FRAME_HEADER : at + frame_size]
        whole = _checksum(body, *previous, big_endian) == (f0, f1)
        if not whole and damaged_at is None:
            damaged_at = n
        elif whole and commit_size and damaged_at is not None:
            return (
                f"frame {damaged_at} of {frames} fails its checksum and a committed "
                f"transaction follows it (frame {n}): SQLite would drop it"
            )
        previous = (f0, f1)
    return None
