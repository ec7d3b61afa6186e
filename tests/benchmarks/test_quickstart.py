"""The quickstart benchmark's report and parsing, from made-up figures: the run itself
clones the repository and installs a virtual environment (minutes), so it is not run here."""

from pathlib import Path

from benchmarks.quickstart import Figures, disk_bytes, parse_args, pytest_summary, report
from harness import RESULTS


def test_serve_reports_install_then_start_to_ready_and_the_disk() -> None:
    figures = Figures("bash scripts/dev.sh serve", "fresh (empty)", 58.6, 11.24, 69.8)
    figures.venv_bytes = 504_300_000
    text = report(figures)
    assert "| command (in a fresh clone) | `bash scripts/dev.sh serve` |" in text
    assert "| pip's cache | fresh (empty) |" in text
    assert "| install (`python3 -m venv`, `pip install -e .`) | 59 s |" in text
    assert "| then start to `/readyz` 200 | 11.2 s |" in text
    assert "| .venv on disk | 504 MB |" in text
    assert "of which the suite" not in text


def test_ci_reports_the_whole_run_and_the_suite_from_pytests_last_line() -> None:
    output = (
        "[dev.sh] gate: mypy --strict\n"
        "==== 3 passed in 1.00s ====\n"
        "= 574 passed, 6 skipped, 2 warnings in 372.45s (0:06:12) =\n"
    )
    assert pytest_summary(output) == ("574 passed, 6 skipped, 2 warnings", 372.45)
    assert pytest_summary("no tests ran") is None
    figures = Figures("CI=true bash .ci/run", "reused", total_s=585.0, venv_bytes=2_200_000_000)
    figures.suite, figures.suite_s = "574 passed", 372.45
    text = report(figures)
    assert "| the whole command | 9.8 min (585 s) |" in text
    assert "| of which the suite | 574 passed: 6.2 min |" in text
    assert "| .venv on disk | 2,200 MB |" in text


def test_options_and_disk(tmp_path: Path) -> None:
    assert parse_args([]).out == RESULTS / "quickstart.md"
    args = parse_args(["--test", "--reuse-pip-cache"])
    assert (args.out, args.reuse_pip_cache) == (RESULTS / "quickstart_test.md", True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"12345")
    (tmp_path / "y").write_bytes(b"123")
    (tmp_path / "link").symlink_to(tmp_path / "y")
    assert disk_bytes(tmp_path) == 8
