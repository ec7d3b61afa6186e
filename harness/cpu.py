"""CPU seconds (user + system) of processes on Linux, for "how much CPU did each side use".

A benchmark reads a figure before and after a measured window and divides the difference
by the window's wall time: 100 % is one core busy.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = ["children_cpu", "own_cpu", "process_cpu", "tree_cpu"]


def _stat_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds of one process (every thread); NaN when it cannot be read."""
    try:
        return _stat_cpu(pid)
    except (OSError, ValueError, IndexError):
        return float("nan")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants: a server started with workers, or
    milvus-server's launcher with etcd and Milvus under it; 0 when it is gone."""
    try:
        total = _stat_cpu(pid)
    except (OSError, ValueError, IndexError):
        return 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(tree_cpu(int(child)) for child in children)


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk, corel-import)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    """CPU seconds of this process, every thread."""
    times = os.times()
    return times.user + times.system
