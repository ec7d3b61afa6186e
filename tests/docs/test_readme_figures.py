"""Every figure the README quotes stands in the result file it cites.

The README's quickstart costs and its "Measured" section are read as blocks: a paragraph,
a bullet, or a table (a table takes the sources of the paragraph just before it). A block's
sources are its links into `benchmarks/results/` or `models/`, files a benchmark or a
training run wrote. A figure is a number with a decimal point, a thousands separator, or a
unit (ms, s, min, MB, GB, %, x); each must appear in one of its block's sources, as written
or rounded to as many decimals (a percentage also as a share, 54 % as 0.54). Counts and
settings ("concurrency 32", "5 epochs") are not figures and are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.examples import REPO

README = REPO / "README.md"
SOURCE_ROOTS = ("benchmarks/results/", "models/")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
NUMBER_IN_PROSE = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
UNIT = re.compile(r"\s?(?:ms|s|min|MB|GB|%|x)(?!\w)")
RANGE = re.compile(r"[-–]\d")
NOT_FIGURES = re.compile(r"\d{4}-\d\d-\d\d|(?:Python|torch|curl) \d[\d.]*")  # dates, versions


def blocks(markdown: str) -> list[tuple[str, list[str]]]:
    """(text, sources) of each block of the quickstart costs and the Measured section."""
    wanted = []
    section = ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif section in ("Quickstart", "Measured"):
            wanted.append(line)
    chunks: list[list[str]] = [[]]
    for line in wanted:
        last = chunks[-1]
        table_goes_on = bool(last) and last[0].startswith("|") and line.startswith("|")
        if not line.strip():
            chunks.append([])
        elif last and (line.startswith("- ") or line.startswith("|")) and not table_goes_on:
            chunks.append([line])
        else:
            last.append(line)
    result: list[tuple[str, list[str]]] = []
    previous: list[str] = []
    for chunk in filter(None, chunks):
        text = "\n".join(chunk)
        sources = [t for t in LINK.findall(text) if t.startswith(SOURCE_ROOTS)]
        if text.startswith("|") and not sources:
            sources = previous
        previous = sources
        result.append((text, sources))
    return result


def figures(text: str) -> list[str]:
    prose = re.sub(r"\]\([^)]*\)|`[^`]*`|<!--.*?-->", "]", text)  # not links, code, comments
    prose = NOT_FIGURES.sub("", prose)
    matches = list(NUMBER_IN_PROSE.finditer(prose))

    def is_figure(i: int) -> bool:
        number, end = matches[i].group(), matches[i].end()
        if "." in number or "," in number or UNIT.match(prose, end):
            return True
        ranged = RANGE.match(prose, end) and i + 1 < len(matches)
        return bool(ranged) and matches[i + 1].start() == end + 1 and is_figure(i + 1)

    found = [match.group() for i, match in enumerate(matches) if is_figure(i)]
    return found


def appears_in(figure: str, source_text: str, *, percent: bool) -> bool:
    wanted = float(figure.replace(",", ""))
    decimals = len(figure.partition(".")[2])
    candidates = [wanted, wanted / 100] if percent else [wanted]
    for found in NUMBER.findall(source_text):
        value = float(found.replace(",", ""))
        for goal in candidates:
            places = decimals + (2 if goal is not wanted else 0)
            if abs(round(value, places) - goal) < 0.5 * 10**-places + 1e-12:
                return True
    return False


def test_each_quoted_figure_stands_in_a_result_file_it_cites() -> None:
    problems = []
    checked = 0
    for text, sources in blocks(README.read_text()):
        quoted = figures(text)
        if not quoted:
            continue
        first_line = text.splitlines()[0][:80]
        if not sources:
            problems.append(f"figures {quoted[:4]} cite no result file: {first_line!r}")
            continue
        for source in sources:
            assert (REPO / source).is_file(), f"README cites {source}: no such file"
        texts = "\n".join((REPO / source).read_text() for source in sources)
        for figure in quoted:
            percent = bool(re.search(re.escape(figure) + r"\s?%", text))
            if not appears_in(figure, texts, percent=percent):
                problems.append(f"{figure} is in none of {sources}: {first_line!r}")
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked > 30  # the README quotes its measurements; a parse that found none is wrong


def test_figures_are_numbers_with_a_decimal_a_separator_or_a_unit() -> None:
    text = "647-1,190 requests/s at concurrency 32, p50 1.1 ms, 708 MB, 0.93x, 5 epochs, 54 %"
    text += " on 2026-12-07 with Python 3.11"
    assert figures(text) == ["647", "1,190", "1.1", "708", "0.93", "54"]


def test_a_figure_matches_its_source_as_written_or_rounded() -> None:
    assert appears_in("0.9027", '"silhouette": 0.902747631', percent=False)
    assert appears_in("1,190", "| 1,190 |", percent=False)
    assert appears_in("54", "recognised 0.5412", percent=True)
    assert not appears_in("0.9028", '"silhouette": 0.902747631', percent=False)
    assert not appears_in("1,190", "| 1,191 |", percent=False)


def test_blocks_give_a_table_the_sources_of_its_paragraph(tmp_path: Path) -> None:
    text = (
        "## Measured\n\nThe model ([metrics](models/m/metrics.json)):\n\n| a | 0.5 |\n"
        "|---|---|\n\n- a bullet, 3 ms ([r](benchmarks/results/r.md#x))\n  continued\n"
        "## Other\n\n1.5 ms elsewhere\n"
    )
    assert blocks(text) == [
        ("The model ([metrics](models/m/metrics.json)):", ["models/m/metrics.json"]),
        ("| a | 0.5 |\n|---|---|", ["models/m/metrics.json"]),
        (
            "- a bullet, 3 ms ([r](benchmarks/results/r.md#x))\n  continued",
            ["benchmarks/results/r.md"],
        ),
    ]
