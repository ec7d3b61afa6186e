"""Debian's `wrk` (a C load generator, which leaves the cores to the server) run with a Lua
script of requests, and what it measured.

`lua_cycle(requests)` makes a script that sends the given (method, path, body) requests in
turn; `script(request)` wraps a Lua `request` function of one's own (it may use `n`, the
request's number, `tid`, the wrk thread's, and `headers`). Every script ends with one
`WRK ...` line of figures, which `run` reads, with the CPU that wrk and each watched process
tree used over the run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.cpu import children_cpu, tree_cpu

__all__ = ["Wrk", "lua", "lua_cycle", "run", "script"]

_COMMON = """
local headers = {["Content-Type"] = "application/json"}
local n = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
init = function(args)
  n = (tid or 0) * 7919
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %f %f %f %f %f %f %f\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def lua(text: str) -> str:
    """A Lua long-bracket string literal of `text` (JSON bodies hold no `]==]`)."""
    return "[==[" + text + "]==]"


def script(request: str) -> str:
    """A wrk script around a Lua chunk that defines `request = function() ... end`."""
    return _COMMON + request


def lua_cycle(requests: Sequence[tuple[str, str, str | None]]) -> str:
    """A wrk script sending these (method, path, body) requests in turn."""
    rows = ",\n".join(
        f"{{{lua(m)}, {lua(p)}, {lua(b) if b is not None else 'nil'}}}" for m, p, b in requests
    )
    return script(
        f"local reqs = {{\n{rows}\n}}\n"
        + """request = function()
  n = n + 1
  local r = reqs[(n % #reqs) + 1]
  return wrk.format(r[1], r[2], headers, r[3])
end
"""
    )


@dataclass
class Wrk:
    """One wrk run: its counts and latencies, and CPU as % of one core over the run."""

    requests: int
    seconds: float  # wrk's own duration
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # answers that were not 2xx or 3xx, and socket errors
    wrk_cpu: float
    cpu: dict[str, float] = field(default_factory=dict)  # each watched process tree
    load: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run(
    url: str,
    lua_script: str,
    *,
    connections: int,
    seconds: float,
    work: Path,
    watch: Mapping[str, int | None] | None = None,
    threads: int | None = None,
) -> Wrk:
    """`wrk` against `url` for `seconds` with this script (written into `work`); `watch`
    names the process trees (by root pid) whose CPU to report. SystemExit when wrk fails."""
    path = work / f"wrk-{time.monotonic_ns()}.lua"
    path.write_text(lua_script)
    pids = {name: pid for name, pid in (watch or {}).items() if pid is not None}
    command = ["wrk", "-t", str(threads or min(2, connections)), "-c", str(connections)]
    command += ["-d", f"{seconds:g}s", "--timeout", "30s", "-s", str(path), url]
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    client0, started = children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
    wall = time.perf_counter() - started
    after = {name: tree_cpu(pid) for name, pid in pids.items()}
    client1 = children_cpu()
    path.unlink()
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(
            f"wrk failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    requests, duration_us, p50, p99, worst, status, socket = map(float, line.split()[1:])
    return Wrk(
        requests=int(requests),
        seconds=duration_us / 1e6,
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        max_ms=worst / 1000,
        errors=int(status + socket),
        wrk_cpu=100 * (client1 - client0) / wall,
        cpu={name: 100 * (after[name] - before[name]) / wall for name in pids},
        load=os.getloadavg()[0],
    )
