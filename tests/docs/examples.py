"""Run the examples of README.md and docs/*.md as written and compare their answers.

The convention the docs follow (docs/development.md, "Documentation examples"):

- A ```bash block is a command and a ```python block a script; both are run, in the
  order of the file, unless the line before the block (blank lines aside) is
  `<!-- not run in CI: REASON -->`. bash runs with `-e -o pipefail`, python with the
  virtual environment's interpreter; every block must exit 0.
- A ```json or ```text block that follows a command block (nothing but blank lines
  between) is its documented answer, compared with what the command printed on stdout:
  json: the same number of JSON values, each of the same shape (keys and value types,
    recursively; numbers and strings may differ). `"…"` as a list's last element makes
    its length free (each element shaped like the one shown at its place, or the last
    one shown), `"…": "…"` in an object stands for more keys, and `"…"` as any other
    value for any value;
  text: the same lines once numbers (and long hex strings) are masked; `…` inside a line
    matches anything, and a line that is only `…` matches any number of lines.
- Any other block (```json, ```text, ```yaml, ```toml) is an illustration. A fence with no
  language or another one is refused, so a command cannot hide from the run.

Commands reach the service at http://127.0.0.1:8000; the runner swaps that port (and any
other 127.0.0.1:80NN or `--port 80NN`) for a free one. They run in a scratch copy of the
files git tracks, as a fresh clone would have them (no data/, no caches, no untracked
files), with `.venv` a link to the environment running the tests, so an example can write
anywhere without touching the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {"bash", "python"}
ILLUSTRATIONS = {"json", "text", "yaml", "toml"}
SKIP = re.compile(r"^<!--\s*not run in CI:\s*(.*?)\s*-->$")
PORT = re.compile(r"(127\.0\.0\.1:|--port )(80\d\d)\b")
ELLIPSIS = "…"


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None = None  # the reason given by a not-run marker
    answer: Block | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def parse(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, answers attached to their commands."""
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    previous = ""  # the last non-blank line outside a block
    adjacent: Block | None = None  # the block just before, when only blank lines follow it
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("```"):
            if line.strip():
                previous, adjacent = line.strip(), None
            i += 1
            continue
        lang = line[3:].strip()
        end = i + 1
        while end < len(lines) and lines[end] != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{i + 1}: a block that never closes")
        marker = SKIP.match(previous)
        block = Block(path, i + 1, lang, "\n".join(lines[i + 1 : end]) + "\n")
        block.skip = (marker.group(1) or "(no reason)") if marker else None
        if adjacent is not None and adjacent.lang in COMMANDS and lang in ("json", "text"):
            adjacent.answer = block
        blocks.append(block)
        previous, adjacent = "", block
        i = end + 1
    return blocks


# ------------------------------------------------------------------------------- running


def scratch_clone(folder: Path) -> Path:
    """A folder that looks like a fresh clone to the examples (see the module docstring):
    the files git tracks, as they are in the working tree, and nothing else. An untracked
    file (a `box.json` left by a reader who tried the README) must not change what an
    example sees; a new file a change adds needs `git add` (or `git add -N`) to be seen."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode()
    folder.mkdir(parents=True, exist_ok=True)
    for name in filter(None, listed.split("\0")):
        source, target = REPO / name, folder / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    (folder / ".venv").symlink_to(Path(sys.prefix))
    return folder


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Runs blocks in one scratch folder with ports mapped; `ports[8000]` is the server's."""

    def __init__(
        self, folder: Path, ports: dict[int, int], free_port: Callable[[], int], timeout: float
    ):
        self.folder, self.ports, self.free_port, self.timeout = folder, ports, free_port, timeout
        self.environment = {k: v for k, v in os.environ.items() if not k.startswith("COREL_")}
        self.environment.pop("PYTHONPATH", None)

    def substitute(self, text: str) -> str:
        def swap(match: re.Match[str]) -> str:
            port = int(match.group(2))
            if port not in self.ports:
                self.ports[port] = self.free_port()
            return f"{match.group(1)}{self.ports[port]}"

        return PORT.sub(swap, text)

    def run(self, block: Block) -> Result:
        code = self.substitute(block.text)
        if block.lang == "bash":
            argv = ["bash", "-e", "-o", "pipefail", "-c", code]
        else:
            script = self.folder / f"example-{block.path.stem}-{block.line}.py"
            script.write_text(code)
            argv = [str(self.folder / ".venv" / "bin" / "python"), script.name]
        out, err = self.folder / ".stdout", self.folder / ".stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            # files, not pipes: a server an example starts in the background must not keep
            # the run waiting; its own process group, so that it is stopped afterwards
            process = subprocess.Popen(
                argv,
                cwd=self.folder,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                returncode = process.wait(self.timeout)
            except subprocess.TimeoutExpired:
                returncode = -1
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        stderr_text = err.read_text(errors="replace")
        if returncode == -1:
            stderr_text += f"\n(stopped after {self.timeout:g} s)"
        return Result(returncode, out.read_text(errors="replace"), stderr_text)


# --------------------------------------------------------------------------- comparing


def json_values(text: str) -> list[Any]:
    """The JSON values in `text`, one after another (whitespace between them or not)."""
    decoder, values, i = json.JSONDecoder(), list[Any](), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds[type(value)]


def shape_differences(documented: Any, actual: Any, where: str = "$") -> Iterator[str]:
    """Where `actual` does not have the shape of `documented` (module docstring)."""
    if documented == ELLIPSIS:
        return
    if _kind(documented) != _kind(actual):
        yield f"{where}: documented {_kind(documented)}, got {_kind(actual)}: {actual!r:.80}"
    elif isinstance(documented, dict):
        keys = {k: v for k, v in documented.items() if k != ELLIPSIS}
        missing = keys.keys() - actual.keys()
        extra = set() if ELLIPSIS in documented else actual.keys() - keys.keys()
        if missing:
            yield f"{where}: keys documented but not answered: {sorted(missing)}"
        if extra:
            yield f"{where}: keys answered but not documented: {sorted(extra)}"
        for key in keys.keys() & actual.keys():
            yield from shape_differences(keys[key], actual[key], f"{where}.{key}")
    elif isinstance(documented, list):
        more = bool(documented) and documented[-1] == ELLIPSIS
        shown = documented[:-1] if more else documented
        if not more and len(actual) != len(shown):
            yield f"{where}: documented {len(shown)} elements, got {len(actual)}"
        elif shown:
            for n, value in enumerate(actual):
                yield from shape_differences(shown[min(n, len(shown) - 1)], value, f"{where}[{n}]")


HEX = re.compile(r"\b[0-9a-f]{16,}\b")
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _mask(line: str) -> str:
    return NUMBER.sub("0", HEX.sub("#", line.rstrip()))


def text_matches(documented: str, actual: str) -> bool:
    """Whether `actual` has `documented`'s lines, numbers masked, `…` as a wildcard."""
    patterns: list[re.Pattern[str] | None] = []
    for line in documented.splitlines():
        if line.strip() == ELLIPSIS:
            patterns.append(None)
        else:
            parts = (re.escape(part) for part in _mask(line).split(ELLIPSIS))
            patterns.append(re.compile(".*".join(parts)))
    lines = [_mask(line) for line in actual.splitlines()]

    def match(p: int, n: int) -> bool:
        if p == len(patterns):
            return n == len(lines)
        pattern = patterns[p]
        if pattern is None:
            return any(match(p + 1, m) for m in range(n, len(lines) + 1))
        return n < len(lines) and pattern.fullmatch(lines[n]) is not None and match(p + 1, n + 1)

    return match(0, 0)


def answer_problems(block: Block, result: Result) -> list[str]:
    """What is wrong with `result` as the answer to `block`; empty when it is right."""
    if result.returncode != 0:
        return [f"exit status {result.returncode}"]
    answer = block.answer
    if answer is None:
        return []
    if answer.lang == "text":
        return [] if text_matches(answer.text, result.stdout) else ["the output differs"]
    try:
        actual = json_values(result.stdout)
    except json.JSONDecodeError as error:
        return [f"the output is not JSON: {error}"]
    documented = json_values(answer.text)
    if len(actual) != len(documented):
        return [f"documented {len(documented)} JSON answers, got {len(actual)}"]
    problems: list[str] = []
    for n, (want, got) in enumerate(zip(documented, actual, strict=True)):
        problems += [f"answer {n + 1}: {p}" for p in shape_differences(want, got)]
    return problems
