"""The header every results file starts with (harness.results): where the result came from."""

import json
import re
import subprocess
from pathlib import Path

from harness import REPO
from harness.results import Provenance, cpu_model, git_commit, md_table, verdict


def test_the_header_names_commit_date_machine_load_and_the_command(tmp_path: Path) -> None:
    run = Provenance.begin("benchmarks/x.py", ["--items", "12 000", "--quick"])
    text = run.document("X at 12 items", "| a |\n|---|\n| 1 |\n", ["Note: a note"])
    lines = text.splitlines()

    assert lines[:2] == ["# X at 12 items", ""]
    header = lines[2 : lines.index("", 2)]
    assert [line.split(":", 1)[0] for line in header] == [
        "- Commit",
        "- Date",
        "- Machine",
        "- Load average (1, 5, 15 min)",
        "- Note",
        "- Reproduce",
    ]
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    assert re.fullmatch(rf"- Commit: `{head}(\+dirty)?`", header[0])
    assert re.fullmatch(r"- Date: \d{4}-\d\d-\d\d \d\d:\d\d UTC, \d+\.\d min", header[1])
    assert header[2].startswith(f"- Machine: {run.cpus} CPUs, {cpu_model()}, ")
    loads = r"\d+\.\d\d, \d+\.\d\d, \d+\.\d\d"
    assert re.fullmatch(
        rf"- Load average \(1, 5, 15 min\): {loads} at start, {loads} at end", header[3]
    )
    # the exact command, quoted for a shell
    assert header[-1] == "- Reproduce: `python benchmarks/x.py --items '12 000' --quick`"
    assert text.endswith("\n| a |\n|---|\n| 1 |\n")

    written = run.write(tmp_path / "x.md", text, {"rows": [1, 2]})
    assert written == [tmp_path / "x.md", tmp_path / "x.json"]
    assert (tmp_path / "x.md").read_text() == text
    raw = json.loads((tmp_path / "x.json").read_text())
    assert raw["rows"] == [1, 2]
    assert raw["provenance"]["commit"] == run.commit
    assert raw["provenance"]["command"] == "python benchmarks/x.py --items '12 000' --quick"
    assert set(raw["provenance"]) >= {"date", "cpus", "cpu", "load_start", "load_end"}


def test_a_tree_with_changes_to_tracked_files_is_dirty_and_untracked_files_do_not_count(
    tmp_path: Path,
) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    clean = git_commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{7,}", clean)
    (tmp_path / "new.txt").write_text("untracked\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "a.txt").write_text("two\n")
    assert git_commit(tmp_path) == clean + "+dirty"
    assert git_commit(tmp_path / "nowhere") == "unknown"


def test_the_cpu_model_comes_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nprocessor\t: 1\n")
    assert cpu_model(info) == "Some CPU @ 2.0GHz"


def test_tables_and_verdicts() -> None:
    assert md_table(["a", "b"], [["1", "2"]]) == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    assert (verdict(True), verdict(False), verdict(False, "FAIL")) == (
        "**PASS**",
        "**MISS**",
        "**FAIL**",
    )
