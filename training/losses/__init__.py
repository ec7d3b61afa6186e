"""One module per loss; `build_loss` maps the CLI's `--loss` names to them."""

from training.config import LossName
from training.losses.base import TORCH_SCORES, ClassVectorLoss
from training.losses.cce import CrossEntropyLoss
from training.losses.center import CenterLoss
from training.losses.contrastive import ContrastiveLoss
from training.losses.cosine_corel import CosineCorelLoss
from training.losses.gaussian_corel import GaussianCorelLoss

__all__ = [
    "LOSS_MANIFEST_NAMES",
    "TORCH_SCORES",
    "CenterLoss",
    "ClassVectorLoss",
    "ContrastiveLoss",
    "CosineCorelLoss",
    "CrossEntropyLoss",
    "GaussianCorelLoss",
    "build_loss",
]

# CLI name -> the `loss.name` written into a bundle manifest (DESIGN section 3)
LOSS_MANIFEST_NAMES: dict[LossName, str] = {
    "cosine": "cosine_corel",
    "gaussian": "gaussian_corel",
    "cce": "cce",
    "center": "center",
    "contrastive": "contrastive",
}


def build_loss(
    name: LossName,
    num_classes: int,
    embedding_dim: int,
    *,
    lam: float | None = None,
    gamma: float = 0.5,
    center_alpha: float = 0.5,
    margin: float = 1.0,
) -> ClassVectorLoss:
    if name == "cosine":
        return CosineCorelLoss(num_classes, embedding_dim, lam)
    if name == "gaussian":
        return GaussianCorelLoss(num_classes, embedding_dim, lam, gamma=gamma)
    if name == "cce":
        return CrossEntropyLoss(num_classes, embedding_dim)
    if name == "center":
        return CenterLoss(num_classes, embedding_dim, lam, alpha=center_alpha)
    if name == "contrastive":
        return ContrastiveLoss(num_classes, embedding_dim, margin=margin)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_MANIFEST_NAMES)}")
