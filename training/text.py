"""Text for training: the corpora, the fixed test split, and the tokenizer trained on them.

Two real labelled corpora come from Debian packages (nothing is downloaded):

- `wordnet-nouns` (`wordnet-base`): the gloss of each noun synset in
  /usr/share/wordnet/data.noun, labelled by its lexicographer file (field 2 of the line,
  03..28: noun.act -> "act"); 82,115 glosses, of which noun.Tops (51, the unique beginners
  such as "entity", not a topic) and noun.motive (42) fall under MIN_CLASS_SIZE, leaving
  82,022 glosses in 24 classes;
- `fortunes` (`fortunes`): the quotations of /usr/share/games/fortunes, one class per topic
  file, entries separated by lines holding only "%"; the catch-all files (fortunes,
  miscellaneous, cookie) and the topics with fewer than MIN_CLASS_SIZE entries are left out.

A user's own text is a folder with one sub-folder per class of .txt files (a file is an
item), a .csv with `text` and `label` columns, or a .jsonl of {"text": ..., "label": ...}.

The corpora's test split is fixed by the text itself: an item is a test item when the
sha256 of its text is 0 modulo 5 (about 20 %), so it is the same on every machine, for
every seed and every `limit`, and a text that occurs twice never sits on both sides.

The tokenizer (Hugging Face `tokenizers`, saved as the bundle's tokenizer.json and read by
corel/text.py) is a word-level vocabulary of the training split alone: Unicode NFD,
lowercase, accents stripped, split on whitespace and punctuation; words seen fewer than
MIN_FREQUENCY times are [UNK]; [PAD] is id 0 and [UNK] id 1.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from corel.text import PAD_TOKEN, UNK_TOKEN, TextTokenizer

WORDNET_DIR = os.environ.get("COREL_WORDNET_DIR", "/usr/share/wordnet")
FORTUNES_DIR = os.environ.get("COREL_FORTUNES_DIR", "/usr/share/games/fortunes")
CORPORA = ("wordnet-nouns", "fortunes")

# lexnames(5WN): the noun lexicographer files (Debian's wordnet-base ships no lexnames file)
NOUN_LEXNAMES = {
    3: "Tops",
    4: "act",
    5: "animal",
    6: "artifact",
    7: "attribute",
    8: "body",
    9: "cognition",
    10: "communication",
    11: "event",
    12: "feeling",
    13: "food",
    14: "group",
    15: "location",
    16: "motive",
    17: "object",
    18: "person",
    19: "phenomenon",
    20: "plant",
    21: "possession",
    22: "process",
    23: "quantity",
    24: "relation",
    25: "shape",
    26: "state",
    27: "substance",
    28: "time",
}
FORTUNE_CATCH_ALLS = frozenset({"fortunes", "miscellaneous", "cookie"})
MIN_CLASS_SIZE = 100  # corpora: a class with fewer items is left out (too few to test on)
MIN_FREQUENCY = 2  # a word seen fewer times in the training split is [UNK]
TEST_MODULUS = 5  # sha256(text) % 5 == 0: a test item


class TextDataError(Exception):
    """A text corpus is missing or malformed; training.data re-raises it as DatasetError."""


Texts = tuple[list[str], list[str]]  # (texts, their class names)


def _install_hint(package: str, env: str) -> str:
    return (
        f"Install it with `sudo apt-get install {package}` (Debian/Ubuntu; "
        f"`bash scripts/dev.sh test` does), or point {env} at a copy."
    )


def read_wordnet_nouns(directory: str | Path = WORDNET_DIR) -> Texts:
    """Every noun gloss of WordNet's data.noun and its lexicographer class, in file order."""
    path = Path(directory) / "data.noun"
    if not path.is_file():
        raise TextDataError(
            f"WordNet not found: no {path}. " + _install_hint("wordnet-base", "COREL_WORDNET_DIR")
        )
    texts, labels = [], []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            fields, _, gloss = line.partition(" | ")
            lex = int(fields.split(" ", 2)[1])
            texts.append(gloss.strip())
            labels.append(NOUN_LEXNAMES[lex])
    return _drop_small_classes(texts, labels)


def read_fortunes(directory: str | Path = FORTUNES_DIR) -> Texts:
    """The quotations of each topic file (not .dat, .u8 or a catch-all), labelled by topic."""
    root = Path(directory)
    files = (
        sorted(p for p in root.glob("*") if p.is_file() and not p.suffix) if root.is_dir() else []
    )
    if not files:
        raise TextDataError(
            f"no fortunes found in {root}. " + _install_hint("fortunes", "COREL_FORTUNES_DIR")
        )
    texts, labels = [], []
    for file in files:
        if file.name in FORTUNE_CATCH_ALLS:
            continue
        entry: list[str] = []
        for line in [*file.read_text(encoding="utf-8", errors="replace").splitlines(), "%"]:
            if line.strip() != "%":
                entry.append(line)
                continue
            text = "\n".join(entry).strip()
            entry = []
            if text:
                texts.append(text)
                labels.append(file.name)
    return _drop_small_classes(texts, labels)


def _drop_small_classes(texts: list[str], labels: list[str]) -> Texts:
    counts = Counter(labels)
    keep = [i for i, label in enumerate(labels) if counts[label] >= MIN_CLASS_SIZE]
    return [texts[i] for i in keep], [labels[i] for i in keep]


def read_corpus(name: str) -> Texts:
    return read_wordnet_nouns() if name == "wordnet-nouns" else read_fortunes()


def is_test_text(texts: Sequence[str]) -> np.ndarray:
    """(N,) bool: the corpora's fixed test split, by the sha256 of each text."""
    return np.array(
        [
            int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big") % TEST_MODULUS == 0
            for t in texts
        ],
        dtype=bool,
    )


# -- a user's own text ----------------------------------------------------------------------


def is_text_folder(path: Path) -> bool:
    """A folder of class sub-folders that hold .txt files (and no images) is text."""
    return any(path.glob("*/*.txt"))


def read_text_folder(path: Path) -> Texts:
    texts, labels = [], []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="replace").strip())
            labels.append(folder.name)
    return texts, labels


def csv_has_text_column(path: Path) -> bool:
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    return "text" in header


def read_text_csv(path: Path) -> Texts:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "label" not in rows[0]:
        raise TextDataError(f"{path}: a text .csv needs 'text' and 'label' columns")
    return [r["text"] or "" for r in rows], [r["label"] for r in rows]


def read_jsonl(path: Path) -> Texts:
    texts, labels = [], []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                texts.append(str(row["text"]))
                labels.append(str(row["label"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise TextDataError(
                    f"{path}:{number}: each line must be a JSON object with 'text' and "
                    f"'label' ({exc!r})"
                ) from exc
    return texts, labels


# -- the tokenizer --------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> str:
    """A word-level tokenizer of these texts, at most `vocab_size` tokens with [PAD] and
    [UNK]; returns its tokenizer.json text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+ and runs of punctuation
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        special_tokens=[PAD_TOKEN, UNK_TOKEN],
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return str(tokenizer.to_str())


def load_tokenizer(tokenizer_json: str, max_length: int) -> TextTokenizer:
    """corel/text.py's tokenizer (what the service runs) from tokenizer.json text."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(tokenizer_json, encoding="utf-8")
        return TextTokenizer(path, max_length=max_length)


def vocabulary(tokenizer_json: str) -> list[str]:
    """The tokens by id (id 0 is [PAD])."""
    vocab: dict[str, int] = json.loads(tokenizer_json)["model"]["vocab"]
    words = [""] * len(vocab)
    for word, index in vocab.items():
        words[index] = word
    return words
