"""Datasets in the units a user has (pixels 0..255, raw features), split and seeded.

Sources: Fashion-MNIST from its IDX gzip files (Debian's `dataset-fashion-mnist`),
scikit-learn's bundled digits (no download; for fast tests), and a user's own data as an
image folder (one sub-folder per class), an `.npz` with `x` and `y`, or a CSV with a
`label` column. Text (training/text.py): WordNet's noun glosses and the fortunes from
Debian's packages, a folder of class sub-folders of `.txt` files, a CSV with `text` and
`label` columns, or a `.jsonl`; a text dataset holds token ids, from a tokenizer trained on
its training split. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import logging
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from corel.bundle import TOKENIZER_FILE, InputKind, InputSpec
from corel.text import trim_padding
from training import text
from training.config import TrainConfig

log = logging.getLogger(__name__)

FASHION_MNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DatasetError(Exception):
    """A dataset is missing or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class TextData:
    """What a text dataset adds: its tokenizer, and the test texts it tokenized."""

    tokenizer_json: str  # tokenizer.json, trained on the training split; the bundle ships it
    vocab_size: int
    test_texts: list[str]  # x_test before tokenizing: a bundle is re-evaluated from these


@dataclass
class Dataset:
    """x arrays: images (N, C, H, W) or vectors (N, D) float32 in raw units; for text, token
    ids (N, max_length) int64 padded with 0, which `model_input` cuts to the longest row."""

    name: str
    labels: list[str]  # class names; y holds indices into this list
    input: InputSpec  # kind, shape, scale and offset: the bundle's `input`
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: dict[str, object] = field(default_factory=dict)
    text: TextData | None = None

    def model_input(self, raw: np.ndarray) -> np.ndarray:
        if self.input.kind == "text":
            return trim_padding(raw, self.input.pad_id)
        return self.input.to_model(raw)

    @property
    def vocab_size(self) -> int | None:
        return None if self.text is None else self.text.vocab_size

    @property
    def kind(self) -> InputKind:
        return self.input.kind

    @property
    def shape(self) -> tuple[int, ...]:  # one item, no batch axis: (C, H, W) or (D,)
        return tuple(self.input.shape)

    # for code that applies the rule by hand (benchmarks/open_world.py); `model_input` does
    @property
    def scale(self) -> float:
        return self.input.scale

    @property
    def offset(self) -> float:
        return self.input.offset


class _Spec(TypedDict):
    """A dataset's fields but its arrays, as the loaders know them before splitting."""

    name: str
    labels: list[str]
    input: InputSpec
    source: dict[str, object]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not), the MNIST family's format."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist_split(data_dir: Path | str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, 28, 28) float32 in 0..255, labels (N,) int64) for `train` or `test`."""
    data_dir = Path(data_dir)
    images_file, labels_file = FASHION_MNIST_FILES[split]
    missing = [n for n in (images_file, labels_file) if not (data_dir / n).is_file()]
    if missing:
        raise DatasetError(
            f"Fashion-MNIST not found in {data_dir} (missing {', '.join(missing)}). Install it "
            "with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point "
            "COREL_FASHION_MNIST_DIR / --data-dir at a folder holding the four IDX .gz files."
        )
    x = read_idx(data_dir / images_file).astype(np.float32)[:, None]
    y = read_idx(data_dir / labels_file).astype(np.int64)
    return x, y


def load_dataset(
    name: str,
    *,
    data_dir: str,
    val_size: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    max_length: int = TrainConfig.max_length,
    vocab_size: int = TrainConfig.vocab_size,
    limit: int | None = None,
) -> Dataset:
    """Load by name (`fashion-mnist`, `digits`, `wordnet-nouns`, `fortunes`) or path
    (folder, .npz, .csv, .jsonl) and split.

    The validation split is drawn from the training data with `seed`, so it is the same
    for every loss and every run with that seed. Text: `max_length` and `vocab_size` shape
    the tokenizer, and `limit` keeps a seeded sample of that many items (for quick runs);
    the test split is fixed by each text (training/text.py), not by `test_fraction`.
    """
    texts = _read_text(name)
    if texts is not None:
        return _text_dataset(
            *texts,
            val_size=val_size,
            seed=seed,
            max_length=max_length,
            vocab_size=vocab_size,
            limit=limit,
        )
    if name == "fashion-mnist":
        x, y = load_fashion_mnist_split(data_dir, "train")
        x_test, y_test = load_fashion_mnist_split(data_dir, "test")
        spec = _Spec(
            name=name,
            labels=FASHION_MNIST_LABELS,
            input=InputSpec(kind="image", shape=[1, 28, 28], scale=1 / 255, offset=0.0),
            source={"dataset": name, "path": str(data_dir)},
        )
        return _split(x, y, x_test, y_test, spec, 5000 if val_size is None else val_size, seed)
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = digits.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), values 0..16
        spec = _Spec(
            name=name,
            labels=[str(d) for d in range(10)],
            input=InputSpec(kind="image", shape=[1, 8, 8], scale=1 / 16, offset=0.0),
            source={"dataset": "sklearn digits"},
        )
        return _split_with_test(
            x, digits.target.astype(np.int64), spec, val_size, seed, test_fraction
        )
    path = Path(name)
    if not path.exists():
        raise DatasetError(
            f"unknown dataset {name!r}: use fashion-mnist, digits, wordnet-nouns, fortunes, or "
            "the path of a folder (of images or .txt files), an .npz (x, y), a .csv with a "
            "'label' column or a .jsonl"
        )
    if path.is_dir():
        x, y, labels, kind = _read_image_folder(path)
    elif path.suffix == ".npz":
        x, y, labels, kind = _read_npz(path)
    elif path.suffix == ".csv":
        x, y, labels, kind = _read_csv(path)
    else:
        raise DatasetError(f"{path}: expected a folder, an .npz or a .csv file")
    if kind == "image":
        scale, offset = (1 / 255, 0.0) if x.max() > 1.0 else (1.0, 0.0)
    else:  # standardise features with one global scale and offset, kept in the manifest
        std = float(x.std()) or 1.0
        scale, offset = 1.0 / std, -float(x.mean()) / std
    spec = _Spec(
        name=path.stem,
        labels=labels,
        input=InputSpec(kind=kind, shape=list(x.shape[1:]), scale=scale, offset=offset),
        source={"dataset": str(path)},
    )
    return _split_with_test(x, y, spec, val_size, seed, test_fraction)


def _split(
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    spec: _Spec,
    val_size: int,
    seed: int,
) -> Dataset:
    val, train = _validation_split(len(x), val_size, seed)
    return Dataset(
        **spec,
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x_test,
        y_test=y_test,
    )


def _validation_split(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation, training) positions among n training items, seeded."""
    if not 0 < val_size < n:
        raise DatasetError(f"val_size must be between 1 and {n - 1}, got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    return order[:val_size], order[val_size:]


def _split_with_test(
    x: np.ndarray, y: np.ndarray, spec: _Spec, val_size: int | None, seed: int, test_fraction: float
) -> Dataset:
    # A fixed test split (seed 0), so every training seed is scored on the same items.
    order = np.random.default_rng(0).permutation(len(x))
    n_test = max(1, round(test_fraction * len(x)))
    test, rest = order[:n_test], order[n_test:]
    val = max(1, len(rest) // 10) if val_size is None else val_size
    return _split(x[rest], y[rest], x[test], y[test], spec, val, seed)


def _encode_labels(raw: np.ndarray) -> tuple[np.ndarray, list[str]]:
    names, y = np.unique(raw.astype(str) if raw.dtype.kind in "OUS" else raw, return_inverse=True)
    return y.astype(np.int64), [str(n) for n in names]


def _read_image_folder(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], InputKind]:
    """Images keep the channels they have: one (grey) when every image is grey, else three
    (RGB; a grey image among colour ones gets three equal channels). They take the most
    common size; an image of another size is resized to it (bilinear), and the log says
    how many were, so that a user with mixed sizes knows."""
    from PIL import Image

    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DatasetError(f"{path}: an image folder needs one sub-folder per class (>= 2)")
    rgb, targets = [], []
    for index, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                rgb.append(Image.open(file).convert("RGB"))
                targets.append(index)
    if not rgb:
        raise DatasetError(f"{path}: no images found in its class sub-folders")
    sizes = Counter(image.size for image in rgb)
    size = sizes.most_common(1)[0][0]
    resized = len(rgb) - sizes[size]
    if resized:
        log.warning(
            "%s: %d of %d images resized to %dx%d, the most common size",
            path, resized, len(rgb), *size,
        )  # fmt: skip
    arrays = [np.asarray(image.resize(size, Image.Resampling.BILINEAR) if image.size != size
                         else image, dtype=np.float32) for image in rgb]  # fmt: skip
    grey = all((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all() for a in arrays)
    x = np.stack([a[..., :1] if grey else a for a in arrays]).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.array(targets, np.int64), classes, "image"


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], InputKind]:
    with np.load(path, allow_pickle=False) as data:
        if "x" not in data or "y" not in data:
            raise DatasetError(f"{path}: an .npz dataset needs arrays 'x' and 'y'")
        x, raw_y = data["x"].astype(np.float32), data["y"]
    if len(x) != len(raw_y):
        raise DatasetError(f"{path}: x has {len(x)} rows but y has {len(raw_y)}")
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    y, labels = _encode_labels(raw_y)
    return x, y, labels, "image" if x.ndim == 4 else "vector"


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], InputKind]:
    import csv

    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r]
    label_col = header.index("label") if "label" in header else len(header) - 1
    try:
        x = np.array(
            [[float(v) for i, v in enumerate(r) if i != label_col] for r in body], dtype=np.float32
        )
    except ValueError as exc:
        raise DatasetError(f"{path}: every column but the label must be numeric ({exc})") from exc
    y, labels = _encode_labels(np.array([r[label_col] for r in body]))
    return x, y, labels, "vector"


# -- text -----------------------------------------------------------------------------------


def _read_text(name: str) -> tuple[str, list[str], list[str]] | None:
    """(dataset name, texts, class names) when `name` is text; None when it is not."""
    path = Path(name)
    try:
        if name in text.CORPORA:
            return (name, *text.read_corpus(name))
        if path.is_dir() and text.is_text_folder(path):
            return (path.stem, *text.read_text_folder(path))
        if path.suffix == ".jsonl" and path.is_file():
            return (path.stem, *text.read_jsonl(path))
        if path.suffix == ".csv" and path.is_file() and text.csv_has_text_column(path):
            return (path.stem, *text.read_text_csv(path))
    except text.TextDataError as exc:
        raise DatasetError(str(exc)) from exc
    return None


def _text_dataset(
    name: str,
    texts: list[str],
    labels: list[str],
    *,
    val_size: int | None,
    seed: int,
    max_length: int,
    vocab_size: int,
    limit: int | None,
) -> Dataset:
    """Token ids split into train / validation / test, the tokenizer trained on train alone."""
    if limit is not None and limit < len(texts):
        keep = np.sort(np.random.default_rng(0).choice(len(texts), size=limit, replace=False))
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    y, names = _encode_labels(np.array(labels))
    if len(names) < 2:
        raise DatasetError(f"{name}: text data needs at least two classes, found {names}")
    is_test = text.is_test_text(texts)
    test, rest = np.flatnonzero(is_test), np.flatnonzero(~is_test)
    if len(test) == 0 or len(rest) < 3:
        raise DatasetError(f"{name}: {len(texts)} texts are too few to split for training")
    val, train = _validation_split(
        len(rest), max(1, len(rest) // 10) if val_size is None else val_size, seed
    )
    val, train = rest[val], rest[train]
    tokenizer_json = text.train_tokenizer([texts[i] for i in train], vocab_size)
    ids = text.load_tokenizer(tokenizer_json, max_length).encode(texts).ids
    x = np.zeros((len(texts), max_length), np.int64)  # every row padded to max_length
    x[:, : ids.shape[1]] = ids
    spec = InputSpec(
        kind="text",
        shape=[max_length],
        dtype="int64",
        tokenizer=TOKENIZER_FILE,
        max_length=max_length,
        pad_id=0,
    )
    vocab = len(text.vocabulary(tokenizer_json))
    return Dataset(
        name=name,
        labels=names,
        input=spec,
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x[test],
        y_test=y[test],
        source={
            "dataset": name,
            "items": len(texts),
            "test_split": f"sha256(text) % {text.TEST_MODULUS} == 0",
            "tokenizer": {"vocab_size": vocab, "min_frequency": text.MIN_FREQUENCY},
        },
        text=TextData(tokenizer_json, vocab, [texts[i] for i in test]),
    )
