import torch

from training.losses.base import ClassVectorLoss


class GaussianCorelLoss(ClassVectorLoss):
    """Gaussian-COREL (Kenyon-Dean et al. 2018): similarity s_ij = -gamma * ||h_i - w_j||^2,

        L = mean_i[ lam * gamma * ||h_i - w_yi||^2 + (1 - lam) * logsumexp_j(s_ij) ]

    lam = 0.5 weights attraction and repulsion as a softmax over s would (up to a factor).
    """

    class_rule = "euclidean"
    default_lam = 0.85  # the paper's tuned value for the Fashion-MNIST CNN

    def __init__(
        self, num_classes: int, embedding_dim: int, lam: float | None = None, gamma: float = 0.5
    ) -> None:
        super().__init__(num_classes, embedding_dim)
        self.lam = self.default_lam if lam is None else lam
        self.gamma = gamma

    def compute_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sq_dist = -self.scores(h)  # (N, K): the euclidean rule scores -||h_i - w_j||^2
        attract = self.gamma * sq_dist.gather(1, y[:, None]).squeeze(1)
        repel = torch.logsumexp(-self.gamma * sq_dist, dim=1)  # stable
        return (self.lam * attract + (1.0 - self.lam) * repel).mean()

    def hyperparameters(self) -> dict[str, float]:
        return {"lam": self.lam, "gamma": self.gamma}
