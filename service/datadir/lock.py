"""One server per data directory: an exclusive lock held for the life of the server.

Two servers on one data directory would each keep their own FAISS index in step with the
one SQLite store and silently diverge (an item added through one is never found by the
other's /neighbors). So the first server takes an `flock` on `<data_dir>/.lock` and a second
one refuses to start, naming the holder. The kernel releases the lock when the process
dies, `kill -9` included, so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from service.datadir.layout import DataDir

__all__ = ["DataDirInUseError", "DataDirLock"]


class DataDirInUseError(Exception):
    """Another live process holds the data directory."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = DataDir(data_dir).lock
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise DataDirInUseError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUseError(
                f"the data directory {self.path.parent} is in use by another server "
                f"(pid {holder}); one server per data directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
