"""Auxiliary objectives trained beside the main loss (`--aux-loss`), for the open world
(docs/open-world.md): the main loss still shapes h and the class vectors; the auxiliary
term shapes a chosen layer so that it keeps what the main loss throws away.

- `instance`: instance discrimination (SimCLR, Chen et al. 2020): the NT-Xent loss between
  two views of each item, through a small projection head that is discarded after training.
  Two views of one image must come out closer to each other than to any other item of the
  batch, so the layer keeps what tells items of one class apart (within-class structure),
  which Cosine-COREL pulls onto its class direction.
- `rotation`: self-supervised rotation prediction (Gidaris et al. 2018; for out-of-distribution
  detection, Hendrycks et al. 2019): each item turned by 0, 90, 180 or 270 degrees, and a
  linear head on the layer tells which. The layer must know which way up a garment stands,
  which the class alone does not ask for.
- `outlier`: outlier exposure (Hendrycks et al. 2019) with synthetic outliers made from the
  training batch itself: each item mixed half-and-half with an item of another class. Their
  h is pushed towards orthogonal to every class vector, as Cosine-COREL's repulsion pushes
  an item from its wrong classes: max(0, max_j cos(h_mix, w_j))^2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceContrastLoss(nn.Module):
    """NT-Xent over two views z1, z2 (N, F) of the same N items, via a projection head
    F -> hidden -> out with a ReLU between (the head is trained, then thrown away)."""

    def __init__(
        self, in_features: int, temperature: float = 0.2, hidden: int = 128, out: int = 64
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.head = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(f"two views of (N, F) expected, got {tuple(z1.shape)}, {z2.shape}")
        n = len(z1)
        if n < 2:
            return (z1.sum() + z2.sum()) * 0.0  # no other item to tell apart
        p = F.normalize(self.head(torch.cat([z1, z2])), dim=1)  # (2N, out)
        logits = p @ p.T / self.temperature
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
        # item i's other view is i + n (and i - n for the second half)
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
        return F.cross_entropy(logits, target)


class RotationLoss(nn.Module):
    """Cross-entropy of a linear head (F -> 4) telling the quarter turn of each view."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.head = nn.Linear(in_features, 4)

    def forward(self, z: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.head(z), turns)


def rotate_each(
    batch: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image turned by a random number of quarter turns (half turns only when it is not
    square): (the turned batch, the turns (N,) in 0..3)."""
    square = batch.shape[-1] == batch.shape[-2]
    turns = torch.randint(0, 4, (len(batch),), generator=generator)
    if not square:
        turns = turns - turns % 2  # 0 or 2
    turned = batch.clone()
    for k in (1, 2, 3):
        chosen = turns == k
        if chosen.any():
            turned[chosen] = torch.rot90(batch[chosen], k, dims=(-2, -1))
    return turned, turns


def orthogonal_to_classes(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The outlier term: mean of max(0, max_j cos(h_i, w_j))^2 over the outliers h (N, D)."""
    if len(h) == 0:
        return h.sum() * 0.0
    cos = F.normalize(h, dim=1) @ F.normalize(weight, dim=1).T
    return cos.max(1).values.clamp(min=0.0).pow(2).mean()


def mix_other_class(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Synthetic outliers from the batch alone: each item averaged with a random item of
    another class (pairs of one class are dropped). (M, ...) with M <= N."""
    partner = torch.randperm(len(x), generator=generator)
    keep = y != y[partner]
    return 0.5 * (x[keep] + x[partner[keep]])


def augment_each(batch: torch.Tensor, generator: torch.Generator, shift: int = 3) -> torch.Tensor:
    """A view for instance discrimination: a random horizontal flip and a random shift of up
    to `shift` pixels (zero padded), drawn per image (the trainer's `augment` shifts a whole
    batch at once, which would let two views be matched by their common shift)."""
    n, _, height, width = batch.shape
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    padded = nn.functional.pad(batch, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(height)[None, :])[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(width)[None, :])[:, None, None, :]  # (N, 1, 1, W)
    index = torch.arange(n)[:, None, None, None]
    channels = torch.arange(batch.shape[1])[None, :, None, None]
    return padded[index, channels, rows, cols]
