"""Every command in README.md and docs/*.md runs as written and answers as documented.

The convention is in tests/docs/examples.py. One real server on the shipped bundle and a
fresh data directory serves every document, run in order (README first), so the
documents' example ids must not collide, as they would not for a reader who follows them
one after another against one server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.server import LocalServer, free_port, launch
from tests.conftest import DEFAULT_BUNDLE
from tests.docs.examples import (
    COMMANDS,
    ILLUSTRATIONS,
    REPO,
    Runner,
    answer_problems,
    documents,
    parse,
    scratch_clone,
)

DOCUMENTS = documents()
NAMES = [str(path.relative_to(REPO)) for path in DOCUMENTS]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    base = tmp_path_factory.mktemp("docs-server")
    running = launch(bundle=DEFAULT_BUNDLE, data_dir=base / "data", log=base / "server.log")
    yield running
    running.stop()


@pytest.mark.parametrize("path", DOCUMENTS, ids=NAMES)
def test_fences_are_commands_answers_or_illustrations(path: Path) -> None:
    for block in parse(path):
        assert block.lang in COMMANDS | ILLUSTRATIONS, (
            f"{block.where}: a ```{block.lang or '(no language)'} block; commands are ```bash "
            f"or ```python, answers and illustrations ```json, ```text, ```yaml or ```toml"
        )
        if block.skip is not None:
            assert block.lang in COMMANDS, f"{block.where}: a not-run marker before a non-command"
            assert block.skip != "(no reason)", f"{block.where}: a not-run marker without a reason"


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCUMENTS, ids=NAMES)
def test_examples_run_as_documented(path: Path, server: LocalServer, tmp_path: Path) -> None:
    commands = [block for block in parse(path) if block.lang in COMMANDS]
    runnable = [block for block in commands if block.skip is None]
    if not runnable:
        return
    port = int(server.url.rsplit(":", 1)[1])
    runner = Runner(scratch_clone(tmp_path / "clone"), {8000: port}, free_port, timeout=180)
    ran = 0
    for block in runnable:
        started = time.monotonic()
        result = runner.run(block)
        problems = answer_problems(block, result)
        assert not problems, (
            f"{block.where}: {'; '.join(problems)} ({time.monotonic() - started:.1f} s)\n"
            f"--- command\n{block.text}--- stdout\n{result.stdout[-4000:]}\n"
            f"--- stderr\n{result.stderr[-4000:]}\n--- server log\n"
            f"{server.log.read_text()[-2000:]}"
        )
        ran += 1
    assert ran == len(runnable)  # every block without a not-run marker ran and answered


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for a markdown file's headings."""
    anchors = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("path", DOCUMENTS, ids=NAMES)
def test_links_point_at_files_and_headings_that_exist(path: Path) -> None:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        assert resolved.exists(), f"{path.relative_to(REPO)}: a link to {target}: no such file"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{path.relative_to(REPO)}: no heading #{anchor}"
