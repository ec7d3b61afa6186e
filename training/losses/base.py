"""The base every loss shares: it owns `forward`, the class vectors and the class rule.

A loss writes only `compute_loss(h, y)`; shape checks, the empty batch (zero loss, never
NaN) and scoring by class rule live here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from corel.class_rule import ClassRuleName

Scorer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def cosine_scores(h: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.normalize(h, dim=1) @ F.normalize(w, dim=1).T


def euclidean_scores(h: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return -torch.cdist(h, w).pow(2)


def dot_scores(h: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    logits = h @ w.T
    return logits if bias is None else logits + bias


# The torch twin of each rule in `corel.class_rule`: scores (N, K), higher is better. The
# tests hold every loss's scores to the numpy rule the service and the evaluation use.
TORCH_SCORES: dict[ClassRuleName, Scorer] = {
    "cosine": cosine_scores,
    "euclidean": euclidean_scores,
    "dot": dot_scores,
}


class ClassVectorLoss(nn.Module):
    """A loss over the last hidden layer h (N, D) with K class vectors W (K, D)."""

    class_rule: ClassVar[ClassRuleName]  # how a class is predicted from h
    learns_class_vectors: ClassVar[bool] = True  # False: W is fitted by `fit_class_vectors`
    weight: torch.Tensor  # (K, D): a parameter, or a buffer when not learned

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        weight = torch.empty(num_classes, embedding_dim)
        nn.init.xavier_uniform_(weight)
        if self.learns_class_vectors:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must be (N, {self.embedding_dim}), got {tuple(embeddings.shape)}"
            )
        if labels.shape != embeddings.shape[:1]:
            raise ValueError(f"labels must be ({embeddings.shape[0]},), got {tuple(labels.shape)}")
        if len(labels) == 0:
            return embeddings.sum() * 0.0  # keeps the graph, gives zero gradients
        return self.compute_loss(embeddings, labels.long())

    def compute_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def bias(self) -> torch.Tensor | None:
        return None

    def scores(self, h: torch.Tensor) -> torch.Tensor:  # (N, K), higher is better
        return TORCH_SCORES[self.class_rule](h, self.weight, self.bias)

    @torch.no_grad()
    def fit_class_vectors(self, h: torch.Tensor, y: torch.Tensor) -> None:
        """Set W to the normalised class means of h (for losses without learned W)."""
        if self.learns_class_vectors:
            return
        for k in range(self.num_classes):
            members = h[y == k]
            if len(members):
                self.weight[k] = F.normalize(F.normalize(members, dim=1).mean(0), dim=0)

    def hyperparameters(self) -> dict[str, float]:
        """What the manifest records beside the loss's name (`loss` in DESIGN section 3)."""
        return {}
