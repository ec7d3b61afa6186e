import torch

from training.losses.cce import CrossEntropyLoss


class CenterLoss(CrossEntropyLoss):
    """Center loss (Wen, Zhang, Li and Qiao, "A Discriminative Feature Learning Approach for
    Deep Face Recognition", 2016): cross-entropy plus lam/2 * ||h_i - c_yi||^2.

    The centres are not learned by gradient: after each batch each centre moves towards
    the mean of its members at rate alpha, c_j -= alpha * sum_i(c_j - h_i) / (1 + n_j).
    """

    default_lam = 0.35  # the paper's tuned value for the Fashion-MNIST CNN
    centers: torch.Tensor  # (K, D), a buffer: saved with the weights, never optimised

    def __init__(
        self, num_classes: int, embedding_dim: int, lam: float | None = None, alpha: float = 0.5
    ) -> None:
        super().__init__(num_classes, embedding_dim)
        self.lam = self.default_lam if lam is None else lam
        self.alpha = alpha
        self.register_buffer("centers", torch.zeros(num_classes, embedding_dim))

    def compute_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pull = 0.5 * (h - self.centers[y]).pow(2).sum(1).mean()
        loss = super().compute_loss(h, y) + self.lam * pull
        if self.training:
            self._move_centers(h.detach(), y)
        return loss

    @torch.no_grad()
    def _move_centers(self, h: torch.Tensor, y: torch.Tensor) -> None:
        counts = torch.bincount(y, minlength=self.num_classes).float()  # (K,)
        sums = torch.zeros_like(self.centers).index_add_(0, y, h)  # (K, D)
        delta = (counts[:, None] * self.centers - sums) / (1.0 + counts[:, None])
        self.centers -= self.alpha * delta

    def hyperparameters(self) -> dict[str, float]:
        return {"lam": self.lam, "alpha": self.alpha}
