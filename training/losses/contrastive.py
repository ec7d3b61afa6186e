import torch
import torch.nn.functional as F

from training.losses.base import ClassVectorLoss


class ContrastiveLoss(ClassVectorLoss):
    """Siamese contrastive loss (Hadsell, Chopra and LeCun, "Dimensionality Reduction by
    Learning an Invariant Mapping", 2006) over every pair in the batch:

        L = mean_{i<j}[ same_ij * d_ij^2 + (1 - same_ij) * max(0, margin - d_ij)^2 ] / 2

    with d the Euclidean distance between L2-normalised embeddings. It learns no class
    vectors: they are the normalised class means of training embeddings, fitted after each
    epoch, and classes are predicted by cosine to them.
    """

    class_rule = "cosine"
    learns_class_vectors = False

    def __init__(self, num_classes: int, embedding_dim: int, margin: float = 1.0) -> None:
        super().__init__(num_classes, embedding_dim)
        self.margin = margin

    def compute_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if len(y) < 2:
            return h.sum() * 0.0
        z = F.normalize(h, dim=1)
        i, j = torch.triu_indices(len(y), len(y), offset=1, device=h.device)
        d = (z[i] - z[j]).pow(2).sum(1).clamp(min=1e-12).sqrt()  # (P,)
        same = (y[i] == y[j]).float()
        per_pair = same * d.pow(2) + (1.0 - same) * (self.margin - d).clamp(min=0.0).pow(2)
        return 0.5 * per_pair.mean()

    def hyperparameters(self) -> dict[str, float]:
        return {"margin": self.margin}
