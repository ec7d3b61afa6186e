"""The paper's encoders. Each maps a batch of model inputs to the last hidden layer h (N, D)."""

from __future__ import annotations

import math

import torch
from torch import nn


class PaperCNN(nn.Module):
    """Kenyon-Dean et al.'s CNN for 28x28 images: three 3x3 convolutions of 15, 30 and 60
    filters, each followed by LeakyReLU and 2x2 max-pooling, then two fully connected
    layers of `embedding_dim` (128) units with LeakyReLU. h is the second one's output."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        embedding_dim: int = 128,
        leaky_slope: float = 0.1,
        final_activation: bool = True,
    ) -> None:
        super().__init__()
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for c_in, c_out in ((channels, 15), (15, 30), (30, 60)):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.LeakyReLU(leaky_slope),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers)
        h, w = height, width
        for _ in range(3):
            h, w = max(h // 2, 1), max(w // 2, 1)
        if height < 8 or width < 8:
            raise ValueError(f"PaperCNN needs images of at least 8x8, got {height}x{width}")
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(60 * h * w, embedding_dim),
            nn.LeakyReLU(leaky_slope),
            nn.Linear(embedding_dim, embedding_dim),
            nn.LeakyReLU(leaky_slope) if final_activation else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, D)
        h: torch.Tensor = self.head(self.features(x))
        return h


class PaperFFNN(nn.Module):
    """The paper's feed-forward network: two hidden layers of `embedding_dim` units."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        embedding_dim: int = 128,
        leaky_slope: float = 0.1,
        final_activation: bool = True,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), embedding_dim),
            nn.LeakyReLU(leaky_slope),
            nn.Linear(embedding_dim, embedding_dim),
            nn.LeakyReLU(leaky_slope) if final_activation else nn.Identity(),
        )

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
    if name == "auto":
        name = "cnn" if input_kind == "image" else "ffnn"
    if name == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"the CNN needs image inputs (C, H, W), got shape {input_shape}")
        return PaperCNN(input_shape, embedding_dim, leaky_slope, final_activation)
    if name == "ffnn":
        return PaperFFNN(input_shape, embedding_dim, leaky_slope, final_activation)
    raise ValueError(f"unknown encoder {name!r} (expected auto, cnn or ffnn)")
