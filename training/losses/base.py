"""The base every loss shares: it owns `forward`, the class vectors and the class rule.

A loss writes only `compute_loss(h, y)`; shape checks, the empty batch (zero loss, never
NaN) and scoring by class rule live here once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassVectorLoss(nn.Module):
    """A loss over the last hidden layer h (N, D) with K class vectors W (K, D)."""

    class_rule: str = "cosine"  # cosine | euclidean | dot: how a class is predicted from h
    default_lam: float | None = None
    learns_class_vectors = True  # False: W is set from class means by `fit_class_vectors`

    def __init__(self, num_classes: int, embedding_dim: int, lam: float | None = None) -> None:
        super().__init__()
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.lam = self.default_lam if lam is None else lam
        weight = torch.empty(num_classes, embedding_dim)
        nn.init.xavier_uniform_(weight)
        if self.learns_class_vectors:
            self.weight = nn.Parameter(weight)  # (K, D)
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
        w = self.weight
        if self.class_rule == "cosine":
            return F.normalize(h, dim=1) @ F.normalize(w, dim=1).T
        if self.class_rule == "euclidean":
            return -torch.cdist(h, w).pow(2)
        logits = h @ w.T
        return logits if self.bias is None else logits + self.bias

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
        return {} if self.lam is None else {"lam": float(self.lam)}
