"""What a bundle ships for the open world (bundle format 2): the encoder's second output, the
features of some training items, the input guard, and thresholds calibrated on validation.

The choices here were measured by benchmarks/open_world.py on classes the encoders never
saw, and chosen on validation items only (docs/open-world.md): the features are the
flattened convolutions of the paper's CNN (its dense layers pull unseen things onto the
learned class directions), compared by the cosine similarity to the nearest of 2,000
training items (Sun et al. 2022); new classes are centred-feature prototypes gated so
that they take at most 0.5% of the known classes' items.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeGuard

import numpy as np
import torch
from torch import nn

from corel.bundle import Calibration
from corel.class_rule import rule_for
from corel.open_set import InputGuard, OpenSet, quantile_threshold
from training.data import Dataset
from training.encoders import PaperCNN

BANK_SIZE = 2000  # training items whose features the kNN score compares with
KNN_K = 1
ACCEPT = 0.95  # of each class's own held-out items, accepted by both class checks together
GUARD_ACCEPT = 0.995  # of held-out items, accepted by the input guard
CAPTURE = 0.005  # share of the known classes' items an imprinted class may take
FEATURES = {"output": "features", "layer": "flattened convolutions of the CNN"}


class WithFeatures(nn.Module):
    """The encoder with a second output: (embedding h (N, D), features (N, F)), for export."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        if not isinstance(encoder, PaperCNN):
            raise ValueError(f"only the paper's CNN has a features output, not {encoder}")
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder.head[0](self.encoder.features(x))  # Flatten of the convolutions
        h = self.encoder.head[1:](features)
        return h, features


def has_features(encoder: nn.Module) -> TypeGuard[PaperCNN]:
    return isinstance(encoder, PaperCNN)


@torch.no_grad()
def embed_with_features(
    encoder: nn.Module, model_input: np.ndarray, batch: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    model = WithFeatures(encoder).eval()
    hs, fs = [], []
    for start in range(0, len(model_input), batch):
        h, f = model(torch.from_numpy(model_input[start : start + batch]))
        hs.append(h.numpy())
        fs.append(f.numpy())
    return np.concatenate(hs), np.concatenate(fs)


def fit_open_set(encoder: nn.Module, data: Dataset, seed: int = 0) -> OpenSet:
    """The bank (BANK_SIZE training items, drawn at random) and the input guard (a PCA of
    up to 10,000 training inputs)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data.x_train), size=min(BANK_SIZE, len(data.x_train)), replace=False)
    _, bank = embed_with_features(encoder, data.model_input(data.x_train[pick]))
    guard_pick = rng.choice(len(data.x_train), size=min(10_000, len(data.x_train)), replace=False)
    guard = InputGuard.fit(data.model_input(data.x_train[guard_pick]), seed=seed)
    return OpenSet(bank.mean(0), bank, data.y_train[pick].astype(np.int64), guard, KNN_K)


def calibrate(
    h_val: np.ndarray,
    features_val: np.ndarray | None,
    model_input_val: np.ndarray,
    y_val: np.ndarray,
    class_vectors: np.ndarray,
    rule: str,
    names: list[str],
    open_set: OpenSet | None,
    class_bias: np.ndarray | None = None,
) -> Calibration:
    """The manifest's `calibration`: per class, thresholds that its correctly predicted
    validation items pass; with an open set, two checks (best score, kNN similarity) each
    at sqrt(ACCEPT), so that about ACCEPT pass both, and a global input-guard threshold."""
    scores = rule_for(rule).scores(h_val, class_vectors, class_bias)
    predicted, best = scores.argmax(1), scores.max(1)
    per_check = float(np.sqrt(ACCEPT)) if open_set is not None else ACCEPT
    knn = open_set.knn(features_val) if open_set is not None and features_val is not None else None
    thresholds: dict[str, float | None] = {}
    knn_thresholds: dict[str, float | None] = {}
    for k, name in enumerate(names):
        own = (y_val == k) & (predicted == k)
        thresholds[name] = quantile_threshold(best[own], per_check) if own.any() else None
        if knn is not None:
            knn_thresholds[name] = quantile_threshold(knn[own], per_check) if own.any() else None
    calibration = Calibration(
        thresholds=thresholds,
        accept=ACCEPT,
        method="per class: the quantile of its correctly predicted validation items' score",
        split="validation",
        rule=rule,
    )
    if open_set is None:
        return calibration
    guard = open_set.guard.scores(model_input_val)
    return replace(
        calibration,
        per_check_accept=per_check,
        knn_thresholds=knn_thresholds,
        guard_accept=GUARD_ACCEPT,
        guard_threshold=quantile_threshold(guard, GUARD_ACCEPT),
        imprint_capture=CAPTURE,
    )


def open_set_manifest(open_set: OpenSet) -> dict[str, object]:
    return {
        "features": {**FEATURES, "dim": int(open_set.bank.shape[1])},
        "knn_k": open_set.knn_k,
        "bank_size": len(open_set.bank),
        "score": f"cosine of the features to the k-th nearest bank item, k = {open_set.knn_k}",
        "guard": "PCA reconstruction of the input, and its mean value in the training range",
    }
