"""Every training hyperparameter in one flat, typed place.

The resolved config is saved in each checkpoint and in the bundle manifest, and a resumed
run rebuilds encoder and loss from it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

LOSSES = ("cosine", "gaussian", "cce", "center", "contrastive")
ENCODERS = ("auto", "cnn", "ffnn")


@dataclass
class TrainConfig:
    # data
    dataset: str = "fashion-mnist"  # fashion-mnist | digits | a folder, .npz or .csv path
    data_dir: str = os.environ.get("COREL_FASHION_MNIST_DIR", DEFAULT_FASHION_MNIST_DIR)
    val_size: int | None = None  # None: 5,000 for Fashion-MNIST (the paper's), else 10%
    max_train: int | None = None  # subsample the training split, for quick runs
    # model
    encoder: str = "auto"  # auto: cnn for images, ffnn for vectors
    embedding_dim: int = 128  # width of the last hidden layer h
    leaky_slope: float = 0.1  # LeakyReLU negative slope
    # LeakyReLU after the last dense layer too (the paper: "each layer uses LeakyReLU").
    # False leaves h linear, which avoids a low-norm "ambiguous" region where the 0.1-scaled
    # negative half dominates the direction of weakly activated items.
    final_activation: bool = True
    # loss
    loss: str = "cosine"
    lam: float | None = None  # None: the loss's tuned default for Fashion-MNIST CNN
    gamma: float = 0.5  # Gaussian-COREL similarity width
    center_alpha: float = 0.5  # center loss: rate at which centres move
    margin: float = 1.0  # contrastive loss margin (on L2-normalised embeddings)
    # optimisation (the paper's: Adam, batch 128)
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (annealed to 0 over `epochs`)
    augment: bool = False  # images: random horizontal flip and shifts of up to 2 px
    patience: int | None = None  # stop after this many epochs without a better val accuracy
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None leaves torch's default

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be constant or cosine, not {self.lr_schedule!r}")
        if self.lam is not None and not 0.0 <= self.lam <= 1.0 and self.loss != "center":
            raise ValueError(f"lam must lie in [0, 1] for {self.loss}, got {self.lam}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**values)
