import torch
import torch.nn.functional as F
from torch import nn

from training.losses.base import ClassVectorLoss


class CrossEntropyLoss(ClassVectorLoss):
    """Categorical cross-entropy over a linear layer with bias: the usual classifier head,
    the baseline whose penultimate layer clusters poorly by cosine."""

    class_rule = "dot"

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__(num_classes, embedding_dim)
        self.class_bias = nn.Parameter(torch.zeros(num_classes))

    @property
    def bias(self) -> torch.Tensor:
        return self.class_bias

    def compute_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.scores(h), y)
