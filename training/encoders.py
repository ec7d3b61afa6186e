"""The paper's encoders. Each maps a batch of model inputs to the last hidden layer h (N, D)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DenseHead:
    """The two fully connected layers both encoders end with; h is the second one's output
    (LeakyReLU after it too, as in the paper, unless `final_activation` is False)."""

    embedding_dim: int = 128
    leaky_slope: float = 0.1
    final_activation: bool = True

    def build(self, in_features: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, self.embedding_dim),
            nn.LeakyReLU(self.leaky_slope),
            nn.Linear(self.embedding_dim, self.embedding_dim),
            nn.LeakyReLU(self.leaky_slope) if self.final_activation else nn.Identity(),
        )


class PaperCNN(nn.Module):
    """Kenyon-Dean et al.'s CNN for 28x28 images: three 3x3 convolutions of 15, 30 and 60
    filters, each followed by LeakyReLU and 2x2 max-pooling, then two fully connected
    layers of `embedding_dim` (128) units with LeakyReLU. h is the second one's output."""

    def __init__(self, input_shape: tuple[int, ...], head: DenseHead) -> None:
        super().__init__()
        channels, height, width = input_shape
        if height < 8 or width < 8:
            raise ValueError(f"PaperCNN needs images of at least 8x8, got {height}x{width}")
        slope = head.leaky_slope
        layers: list[nn.Module] = []
        for c_in, c_out in ((channels, 15), (15, 30), (30, 60)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(slope), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        h, w = height, width
        for _ in range(3):
            h, w = max(h // 2, 1), max(w // 2, 1)
        self.head = head.build(60 * h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, D)
        h: torch.Tensor = self.head(self.features(x))
        return h


class PaperFFNN(nn.Module):
    """The paper's feed-forward network for vectors: the two fully connected layers alone."""

    def __init__(self, input_shape: tuple[int, ...], head: DenseHead) -> None:
        super().__init__()
        self.net = head.build(math.prod(input_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (N, D)
        h: torch.Tensor = self.net(x)
        return h


def build_encoder(
    name: str,
    input_kind: str,
    input_shape: tuple[int, ...],
    embedding_dim: int,
    leaky_slope: float,
    final_activation: bool = True,
) -> nn.Module:
    head = DenseHead(embedding_dim, leaky_slope, final_activation)
    if name == "auto":
        name = "cnn" if input_kind == "image" else "ffnn"
    if name == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"the CNN needs image inputs (C, H, W), got shape {input_shape}")
        return PaperCNN(input_shape, head)
    if name == "ffnn":
        return PaperFFNN(input_shape, head)
    raise ValueError(f"unknown encoder {name!r} (expected auto, cnn or ffnn)")
