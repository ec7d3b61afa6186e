"""`corel-import` of text against a real server on a text bundle: a folder of .txt files,
a .csv with a `text` column and a .jsonl, what the server then holds (the stored text, the
labels, the metadata), resuming, long texts, and sources of the wrong kind."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.server import LocalServer
from service.importer import main
from service.importer.errors import ImportFailed
from service.importer.sources import ModelInput, open_source
from service.importer.sources import text as text_sources
from tests.conftest import TEXT_BUNDLE
from tests.service.conftest import StartServer

pytestmark = pytest.mark.skipif(
    not (TEXT_BUNDLE / "manifest.json").is_file(),
    reason=f"needs a text bundle at {TEXT_BUNDLE} (COREL_TEST_TEXT_BUNDLE names another)",
)

TEXT_MODEL = ModelInput("text", (64,))
IMAGE_MODEL = ModelInput("image", (1, 28, 28))
GLOSSES = {
    "animal": ["a large domesticated animal with a long mane, ridden or used to pull loads",
               "a small carnivorous mammal kept as a pet, with soft fur and whiskers",
               "a bird that swims, with webbed feet and a broad flat bill"],
    "plant": ["a tall perennial woody plant with a main trunk and branches",
              "a flowering shrub with prickly stems and fragrant blooms"],
    "artifact": ["a seat for one person, with a back and four legs",
                 "a hand tool with a heavy head for driving nails"],
}  # fmt: skip


@pytest.fixture(scope="module")
def server(start_module_server: StartServer) -> LocalServer:
    return start_module_server(bundle=TEXT_BUNDLE)


def item(server: LocalServer, item_id: str) -> dict:
    with server.client() as http:
        response = http.get(f"/items/{item_id}")
    assert response.status_code == 200, response.text
    return response.json()


def stored_ids(server: LocalServer, prefix: str) -> list[str]:
    with server.client() as http:
        page = http.get("/items", params={"limit": 1000}).json()
    return sorted(i["id"] for i in page["items"] if i["id"].startswith(prefix))


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line.startswith("corel-import: error: ")
    return line


@pytest.mark.slow
def test_a_folder_of_txt_files_becomes_items_labelled_by_sub_folder(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "glosses"
    for label, texts in GLOSSES.items():
        (root / label).mkdir(parents=True)
        for n, text in enumerate(texts):
            (root / label / f"{n}.txt").write_text(f"  {text}\n")

    assert main([str(root), "--url", server.url, "--quiet"]) == 0

    assert "imported 7 items: 7 sent" in capsys.readouterr().out
    # rows in sorted order: animal/0..2, artifact/0..1, plant/0..1
    horse, chair = item(server, "glosses-0"), item(server, "glosses-3")
    assert horse["label"] == "animal" and horse["text"] == GLOSSES["animal"][0]
    assert horse["metadata"] == {"file": "animal/0.txt"} and horse["has_input"]
    assert chair["label"] == "artifact" and chair["text"] == GLOSSES["artifact"][0]
    # what the server holds is searchable by text
    with server.client() as http:
        answer = http.post(
            "/neighbors", json={"queries": [{"input": {"text": GLOSSES["plant"][1]}}], "k": 1}
        ).json()
    assert answer["results"][0]["neighbors"][0]["id"] == "glosses-6"


@pytest.mark.slow
def test_a_csv_with_a_text_column_keeps_ids_labels_and_other_columns_as_metadata(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label", "source"])
        writer.writerow(["horse", GLOSSES["animal"][0], "animal", "wordnet"])
        writer.writerow(["chair", "a seat, with a back\nand four legs", "", "by hand"])

    assert main([str(path), "--url", server.url, "--quiet"]) == 0

    horse, chair = item(server, "horse"), item(server, "chair")
    assert (horse["text"], horse["label"], horse["metadata"]) == (
        GLOSSES["animal"][0], "animal", {"source": "wordnet"},
    )  # fmt: skip
    assert chair["text"] == "a seat, with a back\nand four legs" and chair["label"] is None
    assert chair["metadata"] == {"source": "by hand"}


@pytest.mark.slow
def test_a_jsonl_import_resumes_and_reports_the_texts_it_cut(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lines.jsonl"
    long_text = " ".join(["a long rambling gloss about nothing at all"] * 40)  # > 64 tokens
    rows = [
        {"text": GLOSSES["animal"][1], "label": "animal", "source": "wordnet", "rank": 2},
        {"text": long_text, "label": "act"},
        {"text": GLOSSES["plant"][0], "label": "plant", "tags": ["tree", "wood"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]))

    assert main([str(path), "--url", server.url, "--quiet", "--limit", "2"]) == 0
    first = capsys.readouterr().out
    assert "imported 2 items: 2 sent" in first and "1 texts longer than the model" in first
    assert main([str(path), "--url", server.url, "--quiet"]) == 0

    assert "imported 1 items (resumed at row 2): 1 sent" in capsys.readouterr().out
    assert stored_ids(server, "lines-") == ["lines-0", "lines-1", "lines-2"]
    cat, long, tree = (item(server, f"lines-{n}") for n in range(3))
    assert cat["metadata"] == {"source": "wordnet", "rank": 2} and cat["label"] == "animal"
    assert long["text"] == long_text  # stored whole, embedded from its first tokens
    assert tree["metadata"] == {"tags": ["tree", "wood"]} and tree["text"] == rows[2]["text"]


@pytest.mark.slow
def test_no_truncate_stops_at_a_text_longer_than_the_model_takes(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "too-long.jsonl"
    path.write_text(json.dumps({"text": " ".join(["word"] * 500), "label": "act"}) + "\n")

    assert main([str(path), "--url", server.url, "--quiet", "--no-truncate"]) == 1

    line = error_line(capsys)
    assert "answered 422" in line and "longer than this model's" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("pixels.npz", None, "holds vectors, but the served model takes text [64]"),
        ("features.csv", "label,a,b\nx,1,2\n", "holds vectors, but the served model takes text"),
        ("pictures", None, "holds images, but the served model takes text"),
        ("bad.jsonl", '{"text": "fine"}\n{"label": "no text"}\n', "bad.jsonl:2: each line"),
        ("blank.csv", "text,label\n   ,act\n", "blank.csv: row 0: the text is empty"),
    ],
)
def test_a_source_a_text_model_cannot_take_exits_1_with_one_line(
    server: LocalServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, x=np.zeros((2, 64)))
    elif content is None:
        (path / "shoe").mkdir(parents=True)
        Image.new("L", (28, 28)).save(path / "shoe" / "0.png")
    else:
        path.write_text(content)

    assert main([str(path), "--url", server.url]) == 1

    line = error_line(capsys)
    assert message in line, line


# -- without a server ---------------------------------------------------------------------


def test_text_sources_for_an_image_model_fail_naming_both_kinds(tmp_path: Path) -> None:
    (tmp_path / "folder" / "animal").mkdir(parents=True)
    (tmp_path / "folder" / "animal" / "horse.txt").write_text(GLOSSES["animal"][0])
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": "act"}\n')
    (tmp_path / "a.csv").write_text("text,label\nx,act\n")

    for name in ("folder", "a.jsonl", "a.csv"):
        with pytest.raises(ImportFailed) as failed:
            open_source(tmp_path / name, IMAGE_MODEL)
        assert "holds text, but the served model takes images [1, 28, 28]" in str(failed.value)
        assert "give it an image folder, an .npz or Fashion-MNIST" in str(failed.value)


def test_text_batches_end_at_the_size_or_the_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"text": f"text {n:03d} " + "x" * 90}) + "\n"
                            for n in range(10)))  # fmt: skip
    source = open_source(path, TEXT_MODEL)
    assert source.total == 10

    assert [len(r.values) for r in source.rows(0, 10, 4)] == [4, 4, 2]
    monkeypatch.setattr(text_sources, "TEXT_BATCH_BYTES", 250)  # three ~100-byte texts
    batches = list(source.rows(1, 9, 4))
    assert [(r.start, len(r.values)) for r in batches] == [(1, 3), (4, 3), (7, 2)]
    assert batches[0].values[0].startswith("text 001 ") and batches[0].labels == [None] * 3
    assert batches[0].metadata is None and batches[0].ids is None
