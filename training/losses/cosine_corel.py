import torch
import torch.nn.functional as F

from training.losses.base import ClassVectorLoss


class CosineCorelLoss(ClassVectorLoss):
    """Cosine-COREL (Kenyon-Dean, Cheung and Precup, "Clustering-Oriented Representation
    Learning with Attractive-Repulsive Loss", 2018), as the authors released it:

        L = mean_i[ -lam * cos(h_i, w_yi) + (1 - lam) * max(0, max_{j != yi} cos(h_i, w_j))^2 ]

    h and W are normalised inside the loss; no bias, no scale. Squaring the repulsion pushes
    the most similar wrong class towards orthogonal rather than opposite.
    """

    class_rule = "cosine"
    default_lam = 0.15  # the paper's tuned value for the Fashion-MNIST CNN

    def __init__(self, num_classes: int, embedding_dim: int, lam: float | None = None) -> None:
        super().__init__(num_classes, embedding_dim)
        self.lam = self.default_lam if lam is None else lam

    def compute_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cos = self.scores(h)  # (N, K): the cosine rule
        attract = cos.gather(1, y[:, None]).squeeze(1)  # (N,)
        own_class = F.one_hot(y, self.num_classes).bool()
        most_similar_wrong = cos.masked_fill(own_class, float("-inf")).max(1).values  # (N,)
        repel = most_similar_wrong.clamp(min=0.0).pow(2)
        return (-self.lam * attract + (1.0 - self.lam) * repel).mean()

    def hyperparameters(self) -> dict[str, float]:
        return {"lam": self.lam}
