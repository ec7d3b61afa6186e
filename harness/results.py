"""Where a benchmark's result came from, at the head of every results file it writes.

    run = Provenance.begin("benchmarks/x.py", argv)    # first thing: the load at start
    ...                                                 # the measurements
    text = run.document("X at N items", body)           # the header, then the report
    run.write(RESULTS / "x.md", text, raw)              # and x.json, with "provenance"

The header says the git commit (`+dirty` when tracked files had uncommitted changes), the
UTC date and how long the run took, the machine (CPU count and model, memory, Python), the
load average at start and at end, and the command line that reproduces the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import REPO

__all__ = [
    "Provenance",
    "cpu_model",
    "git_commit",
    "md_table",
    "output_options",
    "output_path",
    "verdict",
]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def git_commit(repo: Path = REPO) -> str:
    """`git rev-parse --short HEAD`, with `+dirty` when tracked files have uncommitted
    changes; "unknown" outside a git checkout."""
    try:
        head = _git(repo, "rev-parse", "--short", "HEAD")
        changed = _git(repo, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if changed else "")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first `model name` of /proc/cpuinfo, else what platform knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        return float("nan")


def _loads(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


@dataclass
class Provenance:
    """What a results file says about where it came from; `begin` it at the run's start."""

    command: str
    commit: str
    started: dt.datetime  # UTC
    load_start: tuple[float, float, float]
    cpus: int
    cpu: str
    memory_gib: float
    python: str
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    @classmethod
    def begin(
        cls, script: str, argv: Sequence[str] | None = None, *, drop: Sequence[str] = ()
    ) -> Provenance:
        """`script`: the benchmark's path in the repository (benchmarks/x.py); `argv`: the
        arguments that reproduce the run (this process's own when None), less the flags in
        `drop` (such as --report-only, which re-reads a cache the command itself fills)."""
        args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in drop]
        return cls(
            command=shlex.join(["python", script, *args]),
            commit=git_commit(),
            started=dt.datetime.now(dt.UTC),
            load_start=os.getloadavg(),
            cpus=os.cpu_count() or 1,
            cpu=cpu_model(),
            memory_gib=_memory_gib(),
            python=platform.python_version(),
        )

    def header(
        self, extra: Sequence[str] = (), load_end: Sequence[float] | None = None
    ) -> list[str]:
        """Markdown bullet lines; the load at end is taken now unless given; `extra` lines
        (versions, a note on the run) come before the command."""
        end = os.getloadavg() if load_end is None else load_end
        took = time.perf_counter() - self._t0
        return [
            f"- Commit: `{self.commit}`",
            f"- Date: {self.started:%Y-%m-%d %H:%M} UTC, {took / 60:.1f} min",
            f"- Machine: {self.cpus} CPUs, {self.cpu}, {self.memory_gib:.0f} GiB; "
            f"Python {self.python}",
            f"- Load average (1, 5, 15 min): {_loads(self.load_start)} at start, "
            f"{_loads(end)} at end",
            *(f"- {line}" for line in extra),
            f"- Reproduce: `{self.command}`",
        ]

    def document(self, title: str, body: str, extra: Sequence[str] = ()) -> str:
        """`# title`, the header, then `body`: what a results file holds."""
        return "\n".join([f"# {title}", "", *self.header(extra), "", body.rstrip("\n"), ""])

    def as_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "date": f"{self.started:%Y-%m-%dT%H:%M:%SZ}",
            "seconds": round(time.perf_counter() - self._t0, 1),
            "cpus": self.cpus,
            "cpu": self.cpu,
            "memory_gib": round(self.memory_gib, 1),
            "python": self.python,
            "load_start": [round(v, 2) for v in self.load_start],
            "load_end": [round(v, 2) for v in os.getloadavg()],
            "command": self.command,
        }

    def publish(
        self,
        title: str,
        body: str,
        out: Path | None,
        raw: dict[str, Any] | None = None,
        extra: Sequence[str] = (),
    ) -> str:
        """`document`, printed, and written to `out` (with `raw` as JSON) unless None."""
        text = self.document(title, body, extra)
        sys.stdout.write(text)
        if out is not None:
            self.write(out, text, raw)
        return text

    def write(self, path: Path, text: str, raw: dict[str, Any] | None = None) -> list[Path]:
        """`text` (from `document`) to `path`; `raw` to the .json beside it, with this
        provenance under "provenance". Returns the files written."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if raw is None:
            return [path]
        data = {"provenance": self.as_dict(), **raw}
        beside = path.with_suffix(".json")
        beside.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")
        return [path, beside]


def output_options(
    parser: argparse.ArgumentParser, default: Path, quick: str | None = None, beside: str = ""
) -> None:
    """--out (the markdown file, `default` unless given; `beside`: what else goes next to
    it) and, with `quick` (what the smoke run does), --quick, which writes no file unless
    --out is given. `output_path(args)` says where to write."""
    shown = default.relative_to(REPO) if default.is_relative_to(REPO) else default
    if quick is not None:
        parser.add_argument(
            "--quick", action="store_true", help=f"{quick}; not saved unless --out is given"
        )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"markdown file to write{beside} (default {shown}"
        + ("; quick mode writes none unless given)" if quick is not None else ")"),
    )
    parser.set_defaults(default_out=default)


def output_path(args: argparse.Namespace) -> Path | None:
    """Where `output_options`' options say to write: None for a quick run without --out."""
    out: Path | None = args.out
    if out is None and not getattr(args, "quick", False):
        out = args.default_out
    return out


def _jsonable(value: Any) -> Any:
    """numpy arrays and scalars as their values, sets as lists, anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines."""
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def verdict(ok: bool, miss: str = "MISS") -> str:
    """**PASS**, or **MISS** (or the word given) in bold."""
    return "**PASS**" if ok else f"**{miss}**"
