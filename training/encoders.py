"""The paper's encoders. Each maps a batch of model inputs to the last hidden layer h (N, D).

Images: the paper's CNN; vectors: its FFNN; text (token ids (N, L), 0 = padding): its FFNN
over averaged word embeddings, or Kim's (2014) 1-D CNN. The text encoders mask the padding
themselves, so an input embeds the same however far its batch is padded.
"""

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


def word_vectors(words: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:  # (N, L, E)
    """The rows of the embedding table, as `words(ids)` does; indexed by hand because the
    ONNX exporter names the value of an `embedding` op "embedding", the graph's output."""
    return words.weight[ids]


class TextFFNN(nn.Module):
    """The paper's FFNN for text: the mean of the input's word embeddings (padding left
    out), then the two fully connected layers; h is the second one's output."""

    def __init__(self, vocab_size: int, word_dim: int, head: DenseHead, pad_id: int = 0) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=pad_id)
        self.head = head.build(word_dim)

    def pooled(self, ids: torch.Tensor) -> torch.Tensor:  # (N, L) -> (N, E)
        mask = (ids != self.pad_id).unsqueeze(-1).to(self.words.weight.dtype)  # (N, L, 1)
        total = (word_vectors(self.words, ids) * mask).sum(1)
        return total / mask.sum(1).clamp(min=1.0)  # an empty input pools to zeros

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (N, L) -> (N, D)
        h: torch.Tensor = self.head(self.pooled(ids))
        return h


class TextCNN(nn.Module):
    """Kim's (2014) CNN for sentences: 1-D convolutions of 3, 4 and 5 tokens (`filters`
    each) over the word embeddings, ReLU, max-over-time pooling, then the two fully
    connected layers; h is the second one's output.

    The convolutions are wide (zero padding of width - 1 on each side) and pool only over
    the windows that hold at least one token of the input, so an input shorter than the
    widest filter still has windows, and the padding after an input never takes part
    (padding tokens embed as zeros, like the convolutions' own zero padding)."""

    def __init__(
        self,
        vocab_size: int,
        word_dim: int,
        head: DenseHead,
        pad_id: int = 0,
        widths: tuple[int, ...] = (3, 4, 5),
        filters: int = 100,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.widths = widths
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(
            nn.Conv1d(word_dim, filters, width, padding=width - 1) for width in widths
        )
        self.head = head.build(filters * len(widths))

    def pooled(self, ids: torch.Tensor) -> torch.Tensor:  # (N, L) -> (N, filters * 3)
        mask = (ids != self.pad_id).unsqueeze(1).to(self.words.weight.dtype)  # (N, 1, L)
        x = word_vectors(self.words, ids).transpose(1, 2) * mask  # (N, E, L), 0 at the padding
        pooled = []
        for width, conv in zip(self.widths, self.convs, strict=True):
            ones = torch.ones(1, 1, width, dtype=mask.dtype)
            # (N, 1, L + width - 1): 1 where the window holds a token of the input
            windows = (nn.functional.conv1d(mask, ones, padding=width - 1) > 0.5).to(mask.dtype)
            # ReLU is >= 0, so zeroing the other windows leaves the max over the input's own
            # (and an empty input pools to zeros)
            pooled.append((torch.relu(conv(x)) * windows).amax(2))
        return torch.cat(pooled, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (N, L) -> (N, D)
        h: torch.Tensor = self.head(self.pooled(ids))
        return h


TEXT_ENCODERS = ("text-ffnn", "text-cnn")


def build_encoder(
    name: str,
    input_kind: str,
    input_shape: tuple[int, ...],
    embedding_dim: int,
    leaky_slope: float,
    final_activation: bool = True,
    *,
    vocab_size: int | None = None,
    word_dim: int = 128,
) -> nn.Module:
    head = DenseHead(embedding_dim, leaky_slope, final_activation)
    if name == "auto":
        name = {"image": "cnn", "text": "text-ffnn"}.get(input_kind, "ffnn")
    if (name in TEXT_ENCODERS) != (input_kind == "text"):
        raise ValueError(
            f"the {name} encoder does not take {input_kind} input (text takes text-ffnn or "
            "text-cnn; images cnn or ffnn; vectors ffnn)"
        )
    if name in TEXT_ENCODERS:
        if vocab_size is None:
            raise ValueError("a text encoder needs the tokenizer's vocab_size")
        if name == "text-cnn":
            return TextCNN(vocab_size, word_dim, head)
        return TextFFNN(vocab_size, word_dim, head)
    if name == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"the CNN needs image inputs (C, H, W), got shape {input_shape}")
        return PaperCNN(input_shape, head)
    if name == "ffnn":
        return PaperFFNN(input_shape, head)
    raise ValueError(f"unknown encoder {name!r} (expected auto, cnn, ffnn, text-ffnn or text-cnn)")
