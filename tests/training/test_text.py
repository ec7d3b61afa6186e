"""Text: the corpora from Debian's packages, a user's own text, the tokenizer, the text
encoders through ONNX, and `corel-train` on text end to end. Real data throughout: the
corpora are Debian's `wordnet-base` and `fortunes` (`scripts/dev.sh test` installs both)."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from corel.bundle import TOKENIZER_FILE, load_bundle
from corel.text import PAD_TOKEN, UNK_TOKEN
from training import text
from training.config import TrainConfig
from training.data import DatasetError, load_dataset
from training.encoders import build_encoder
from training.export import export_onnx
from training.train import train


@pytest.fixture(scope="module")
def wordnet() -> text.Texts:
    return text.read_wordnet_nouns()


@pytest.fixture(scope="module")
def sample():  # 3,000 glosses: the loaders' and the losses' tests in seconds
    return load_dataset("wordnet-nouns", data_dir="", limit=3000, seed=0)


def test_wordnet_nouns_are_glosses_labelled_by_lexicographer_file(wordnet) -> None:
    texts, labels = wordnet
    # 82,115 noun synsets; noun.Tops (51) and noun.motive (42) are under MIN_CLASS_SIZE
    assert len(texts) == 82_115 - 51 - 42 and len(set(labels)) == 24
    assert "Tops" not in labels and "motive" not in labels
    assert texts[0] == 'an action; "how could you do such a thing?"' and labels[0] == "act"
    assert Counter(labels).most_common(1) == [("artifact", 11_587)]


def test_fortunes_are_the_topic_files_without_the_catch_alls() -> None:
    texts, labels = text.read_fortunes()
    counts = Counter(labels)
    assert not set(counts) & {"fortunes", "miscellaneous", "cookie"}
    assert min(counts.values()) >= text.MIN_CLASS_SIZE and "pratchett" not in counts
    assert {"computers", "science", "politics"} <= set(counts) and len(counts) == 29
    assert all(t.strip() and "\n%\n" not in t for t in texts)


def test_a_missing_corpus_says_which_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(text.TextDataError, match="apt-get install wordnet-base"):
        text.read_wordnet_nouns(tmp_path)
    with pytest.raises(text.TextDataError, match="apt-get install fortunes"):
        text.read_fortunes(tmp_path)


def test_the_test_split_is_fixed_by_the_text(wordnet, sample) -> None:
    texts, _ = wordnet
    assert 0.19 < text.is_test_text(texts).mean() < 0.21
    # another seed moves the validation split, never the test split
    other = load_dataset("wordnet-nouns", data_dir="", limit=3000, seed=1)
    assert sample.text.test_texts == other.text.test_texts
    assert not np.array_equal(sample.y_val, other.y_val)
    assert set(sample.text.test_texts) <= set(np.array(texts)[text.is_test_text(texts)])


def test_a_text_dataset_holds_padded_token_ids(sample) -> None:
    assert sample.kind == "text" and sample.shape == (64,) and len(sample.labels) == 24
    assert sample.x_train.dtype == np.int64 and sample.x_train.shape[1] == 64
    assert len(sample.x_train) + len(sample.x_val) + len(sample.x_test) == 3000
    assert sample.input.tokenizer == TOKENIZER_FILE and sample.input.pad_id == 0
    batch = sample.model_input(sample.x_train[:8])  # cut to the batch's longest row
    longest = int((sample.x_train[:8] != 0).sum(1).max())
    assert batch.shape == (8, longest)


def test_the_vocabulary_comes_from_the_training_split_alone(sample) -> None:
    tokenizer = text.load_tokenizer(sample.text.tokenizer_json, max_length=64)
    vocab = set(text.vocabulary(sample.text.tokenizer_json))
    train_ids = set(np.unique(sample.x_train).tolist())
    words = text.vocabulary(sample.text.tokenizer_json)
    # every word but the two special tokens occurs in the training split's token ids
    assert {words[i] for i in train_ids} | {PAD_TOKEN, UNK_TOKEN} == vocab
    # a word only a test gloss holds is unknown
    test_words = {w for t in sample.text.test_texts for w in t.lower().split() if w.isalpha()}
    unseen = sorted(test_words - vocab)
    assert unseen and set(tokenizer.encode(unseen[:5]).ids[:, 0].tolist()) == {1}


def test_tokenizer_round_trip() -> None:
    corpus = ["Café au lait, naïve!", "CAFÉ au LAIT, naive!", "the cat sat"]
    tokenizer_json = text.train_tokenizer(corpus, vocab_size=100)
    words = text.vocabulary(tokenizer_json)
    assert words[:2] == [PAD_TOKEN, UNK_TOKEN]  # ids 0 and 1
    tokenizer = text.load_tokenizer(tokenizer_json, max_length=3)
    batch = tokenizer.encode(["cafe au lait, NAIVE!", "the dog"])
    # normalised (accents, case) and split at punctuation; "the" is seen once: unknown
    assert [words[i] for i in batch.ids[0]] == ["cafe", "au", "lait"]
    assert batch.truncated.tolist() == [True, False] and batch.lengths.tolist() == [3, 2]
    assert batch.ids[1].tolist() == [1, 1, 0]


def test_user_text_as_folder_csv_and_jsonl(wordnet, tmp_path: Path) -> None:
    texts, labels = wordnet
    pairs = list(zip(texts, labels, strict=True))
    rows = [p for p in pairs if p[1] == "plant"][:100] + [p for p in pairs if p[1] == "food"][:100]
    for n, (gloss, label) in enumerate(rows):
        (tmp_path / "folder" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / label / f"{n}.txt").write_text(gloss)
    import csv

    with (tmp_path / "glosses.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "text"])
        writer.writerows((label, gloss) for gloss, label in rows)
    (tmp_path / "glosses.jsonl").write_text(
        "".join(json.dumps({"text": gloss, "label": label}) + "\n" for gloss, label in rows)
    )
    for source in ("folder", "glosses.csv", "glosses.jsonl"):
        data = load_dataset(str(tmp_path / source), data_dir="", seed=0)
        assert data.kind == "text" and data.labels == ["food", "plant"], source
        assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 200
        assert sorted(data.text.test_texts) == sorted(
            g for g, _ in rows if text.is_test_text([g])[0]
        )
    (tmp_path / "bad.jsonl").write_text('{"text": "no label"}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:1: each line must be a JSON object"):
        load_dataset(str(tmp_path / "bad.jsonl"), data_dir="")


@pytest.mark.parametrize("name", ["text-ffnn", "text-cnn"])
def test_an_input_embeds_the_same_however_its_batch_is_padded(
    sample, name: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(name, "text", sample.shape, 128, 0.1, vocab_size=sample.vocab_size)
    path = tmp_path / "encoder.onnx"
    export_onnx(encoder, sample.shape, path, text=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(int64)"
    tokenizer = text.load_tokenizer(sample.text.tokenizer_json, max_length=64)
    # a gloss, a one-word text (shorter than the widest filter) and an empty one
    texts = [sample.text.test_texts[0], "plant", "", *sample.text.test_texts[1:6]]
    batch = tokenizer.encode(texts).ids
    padded = np.pad(batch, ((0, 0), (0, 30)))  # 30 columns more padding than needed
    together = session.run(["embedding"], {"input": padded})[0]
    for n, one in enumerate(texts[:3]):
        alone = session.run(["embedding"], {"input": tokenizer.encode([one]).ids})[0]
        assert np.abs(alone[0] - together[n]).max() < 1e-5, repr(one)
    with torch.no_grad():  # and ONNX reproduces torch
        expected = encoder.eval()(torch.from_numpy(padded)).numpy()
    assert np.abs(expected - together).max() < 1e-4


@pytest.mark.parametrize("loss", ["cosine", "gaussian", "cce", "center", "contrastive"])
def test_every_loss_trains_on_text(sample, loss: str) -> None:
    config = TrainConfig(dataset="wordnet-nouns", loss=loss, epochs=3, seed=0, threads=1)
    result = train(config, sample, progress=False)
    # 24 classes: chance is about 0.04 (0.14 by always answering "artifact")
    assert result.best_val_accuracy > 0.2, loss


def run_cli(app: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = f"from training.cli import {app}; {app}()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_corel_train_on_text_writes_a_bundle_that_corel_eval_rescores(
    wordnet, tmp_path: Path
) -> None:
    texts, labels = wordnet
    keep = {"plant", "animal", "food", "person"}
    rows = [(t, c) for t, c in zip(texts, labels, strict=True) if c in keep][::20][:1200]
    data = tmp_path / "glosses.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": c}) + "\n" for t, c in rows))
    out = tmp_path / "glosses-cnn"
    done = run_cli(
        "train_app",
        *("--dataset", str(data), "--encoder", "text-cnn", "--loss", "cce", "--epochs", "2"),
        *("--threads", "1", "--out", str(out), "--quiet"),
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    bundle = load_bundle(out)
    manifest = bundle.manifest
    assert manifest.input.kind == "text" and manifest.input.dtype == "int64"
    assert manifest.architecture["encoder"] == "TextCNN" and manifest.class_rule == "dot"
    assert TOKENIZER_FILE in manifest.files and manifest.labels == sorted(keep)
    assert bundle.tokenizer().encode(["a tall tree"]).ids.shape == (1, 3)
    assert printed["accuracy"] > 0.5  # four classes
    rescored = run_cli("eval_app", str(out), "--quiet")  # from the strings, the bundle's tokenizer
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["accuracy"] == pytest.approx(printed["accuracy"], abs=1e-6)


def test_the_shipped_text_bundle_loads_and_classifies_glosses() -> None:
    from corel.class_rule import rule_for
    from tests.conftest import REPO

    bundle = load_bundle(REPO / "models" / "wordnet-cosine")
    assert bundle.manifest.input.kind == "text" and bundle.manifest.class_rule == "cosine"
    assert bundle.manifest.metrics["accuracy"] > 0.75
    batch = bundle.tokenizer().encode(["a tall perennial woody plant", "a small domestic cat"])
    session = ort.InferenceSession(str(bundle.encoder_path), providers=["CPUExecutionProvider"])
    (h,) = session.run(["embedding"], {"input": batch.ids})
    scores = rule_for("cosine").scores(h, bundle.class_vectors, None)
    assert [bundle.manifest.labels[k] for k in scores.argmax(1)] == ["plant", "animal"]
