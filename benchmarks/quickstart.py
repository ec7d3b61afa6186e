"""What the README's quickstart costs on a fresh clone: `bash scripts/dev.sh serve` from
nothing to ready, and (with --test) the whole of what CI runs, `CI=true bash .ci/run`.

The repository is cloned (`git clone` of this checkout's HEAD: uncommitted changes are not
in it) into a temporary folder, and the command runs there as a reader would run it:

- serve: the seconds until the virtual environment is installed (dev.sh writes its stamp,
  .venv/.corel-installed, once pip is done), then until /readyz answers 200 on the port
  given to the service; the server is stopped then.
- --test: the seconds of `CI=true bash .ci/run` (the gates and the whole suite), and the
  suite's own count and seconds from pytest's last line.

Then the disk the virtual environment takes. pip reads a fresh, empty cache folder unless
--reuse-pip-cache is given (then its usual cache, warm from earlier installs): downloads
and wheel builds are part of the cold figure, and of neither with a warm cache.

Writes benchmarks/results/quickstart.md (quickstart_test.md with --test), headed by where
it came from (commit, machine, load, the command).

    python benchmarks/quickstart.py                      # serve, cold pip cache: minutes
    python benchmarks/quickstart.py --reuse-pip-cache    # serve, pip's cache as it is
    python benchmarks/quickstart.py --test --reuse-pip-cache   # what CI runs: 10-20 min
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from harness import REPO, RESULTS  # noqa: E402
from harness.progress import say  # noqa: E402
from harness.results import Provenance, md_table  # noqa: E402
from harness.server import free_port  # noqa: E402

STAMP = Path(".venv") / ".corel-installed"
_PYTEST = re.compile(r"=+ (?P<counts>.*\d+ passed.*) in (?P<seconds>[0-9.]+)s")


@dataclass
class Figures:
    command: str  # what ran in the clone
    pip_cache: str  # "fresh" or "reused"
    install_s: float | None = None  # serve: until the stamp
    ready_s: float | None = None  # serve: from the stamp until /readyz 200
    total_s: float = 0.0  # the whole command (serve: until ready)
    suite: str = ""  # --test: pytest's counts
    suite_s: float | None = None
    venv_bytes: int = 0


def disk_bytes(folder: Path) -> int:
    """Bytes of the files below `folder` (as `du -sb`, without following links)."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def pytest_summary(output: str) -> tuple[str, float] | None:
    """The counts and seconds of pytest's last summary line, if any."""
    found = None
    for line in output.splitlines():
        if match := _PYTEST.search(line):
            found = (match["counts"], float(match["seconds"]))
    return found


def clone(into: Path) -> Path:
    target = into / "corel-embed"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=600)
    return target


def serve(checkout: Path, env: dict[str, str], log: Path, timeout: float) -> Figures:
    """`bash scripts/dev.sh serve --port P` until /readyz 200, then stopped."""
    port = free_port()
    command = ["bash", "scripts/dev.sh", "serve", "--host", "127.0.0.1", "--port", str(port)]
    figures = Figures(" ".join(command[:3]), "")
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=checkout,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise SystemExit(f"dev.sh serve exited with {process.returncode}:\n"
                                 f"{log.read_text()[-3000:]}")  # fmt: skip
            if figures.install_s is None and (checkout / STAMP).is_file():
                figures.install_s = time.perf_counter() - started
                say(f"installed in {figures.install_s:.0f} s")
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                ok = False
            if ok:
                figures.total_s = time.perf_counter() - started
                figures.ready_s = figures.total_s - (figures.install_s or 0.0)
                say(f"ready {figures.ready_s:.1f} s after the install")
                return figures
            time.sleep(0.2)
        raise SystemExit(f"not ready within {timeout:g} s:\n{log.read_text()[-3000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def ci(checkout: Path, env: dict[str, str], log: Path, timeout: float) -> Figures:
    """`CI=true bash .ci/run` to its end."""
    figures = Figures("CI=true bash .ci/run", "")
    started = time.perf_counter()
    with log.open("wb") as out:
        done = subprocess.run(
            ["bash", ".ci/run"],
            cwd=checkout,
            env={**env, "CI": "true"},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    figures.total_s = time.perf_counter() - started
    output = log.read_text(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f".ci/run failed ({done.returncode}):\n{output[-3000:]}")
    if summary := pytest_summary(output):
        figures.suite, figures.suite_s = summary
    return figures


def report(figures: Figures) -> str:
    """The results file's body: one table."""
    rows = [
        ["command (in a fresh clone)", f"`{figures.command}`"],
        ["pip's cache", figures.pip_cache],
    ]
    if figures.install_s is not None or figures.ready_s is not None:
        rows += [
            ["install (`python3 -m venv`, `pip install -e .`)", f"{figures.install_s or 0:.0f} s"],
            ["then start to `/readyz` 200", f"{figures.ready_s or 0:.1f} s"],
        ]
    else:
        rows.append(
            ["the whole command", f"{figures.total_s / 60:.1f} min ({figures.total_s:.0f} s)"]
        )
    if figures.suite_s is not None:
        rows.append(["of which the suite", f"{figures.suite}: {figures.suite_s / 60:.1f} min"])
    rows.append([".venv on disk", f"{figures.venv_bytes / 1e6:,.0f} MB"])
    return "\n".join(md_table(["", "measured"], rows))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--test", action="store_true", help="CI=true bash .ci/run, not serve")
    parser.add_argument(
        "--reuse-pip-cache", action="store_true", help="pip's usual cache, not a fresh one"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds (%(default)s)")
    parser.add_argument("--keep", type=Path, help="clone into this new folder and keep it")
    parser.add_argument("--out", type=Path, help="markdown file (default: see above)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS / ("quickstart_test.md" if args.test else "quickstart.md")
    return args


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/quickstart.py", argv)
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corel-quickstart-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COREL_", "VIRTUAL_ENV"))}
        if not args.reuse_pip_cache:
            env["PIP_CACHE_DIR"] = str(work / "pip-cache")
        say(f"cloning {REPO} into {work}")
        checkout = clone(work)
        run = ci if args.test else serve
        figures = run(checkout, env, work / "command.log", args.timeout)
        figures.pip_cache = "reused" if args.reuse_pip_cache else "fresh (empty)"
        figures.venv_bytes = disk_bytes(checkout / ".venv")
    title = "Quickstart: " + ("what CI runs" if args.test else "`serve`") + " on a fresh clone"
    text = provenance.document(title, report(figures))
    print(text, end="")
    provenance.write(args.out, text)


if __name__ == "__main__":
    main()
