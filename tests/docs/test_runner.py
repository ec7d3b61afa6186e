"""The docs' example runner itself: parsing, shape comparison, text matching."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.docs.examples import REPO, parse, scratch_clone, shape_differences, text_matches


def test_parse_pairs_answers_with_commands_and_reads_not_run_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Intro.\n\n```bash\necho 1\n```\n\n```json\n1\n```\n\n"
        "<!-- not run in CI: needs Docker -->\n```bash\ndocker ps\n```\n"
        "Prose between.\n```text\nan illustration\n```\n"
    )
    run, answer, skipped, illustration = parse(doc)
    assert (run.lang, run.text, run.skip, run.answer) == ("bash", "echo 1\n", None, answer)
    assert skipped.skip == "needs Docker" and skipped.answer is None
    assert illustration.lang == "text" and illustration.skip is None


def test_shapes_compare_keys_and_types_not_values() -> None:
    assert not list(shape_differences({"a": 1, "b": ["x"]}, {"a": 2.5, "b": ["y"]}))
    assert list(shape_differences({"a": 1}, {"a": "1"}))  # a number documented, a string sent
    assert list(shape_differences({"a": 1}, {"a": 1, "b": 2}))  # an undocumented key
    assert list(shape_differences({"a": True}, {"a": 1}))  # booleans are not numbers
    assert list(shape_differences([1, 2], [1, 2, 3]))  # lengths count without an ellipsis


def test_ellipsis_frees_list_lengths_object_keys_and_values() -> None:
    assert not list(shape_differences([1, "…"], [1, 2, 3]))
    assert not list(shape_differences([1, "…"], []))
    assert list(shape_differences([1, "…"], [1, "two"]))
    assert not list(shape_differences({"a": 1, "…": "…"}, {"a": 1, "b": [2]}))
    assert list(shape_differences({"a": 1, "…": "…"}, {"b": 1}))  # a shown key stays required
    assert not list(shape_differences({"a": "…"}, {"a": {"deep": [1]}}))


def test_text_masks_numbers_and_takes_ellipsis_lines_and_fragments() -> None:
    assert text_matches("took 1.5 s, 1,030 items\n", "took 22.75 s, 7 items\n")
    assert not text_matches("took 1.5 s\n", "took 1.5 ms\n")
    assert text_matches("a\n…\nz\n", "a\nb\nc\nz\n")
    assert text_matches("a\n…\nz\n", "a\nz\n")
    assert text_matches("date: …\n", "date: Wed, 02 Dec 2026 05:15:41 GMT\n")
    assert not text_matches("a\nz\n", "a\nb\nz\n")


def test_scratch_clone_holds_tracked_files_only(tmp_path: Path) -> None:
    # what a reader leaves at the root by trying the README (its box.json), as a new name
    left_behind = REPO / f"left-behind-{uuid.uuid4().hex[:8]}.json"
    left_behind.write_text("{}")
    try:
        clone = scratch_clone(tmp_path / "clone")
    finally:
        left_behind.unlink()
    assert not (clone / left_behind.name).exists()
    assert (clone / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    assert (clone / "models" / "fashion-mnist-cosine" / "manifest.json").is_file()
    assert not (clone / "data").exists()
    assert (clone / ".venv").is_symlink()
