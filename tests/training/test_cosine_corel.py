"""Cosine-COREL against values worked out by hand on small tensors."""

import math

import pytest
import torch

from training.losses import CosineCorelLoss


def loss_with(weight: list[list[float]], lam: float) -> CosineCorelLoss:
    loss = CosineCorelLoss(num_classes=len(weight), embedding_dim=len(weight[0]), lam=lam)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor(weight))
    return loss


def test_loss_matches_hand_computation_for_two_items() -> None:
    # Class vectors along x, y and the diagonal of x and -y; their norms must not matter.
    loss = loss_with([[2.0, 0.0], [0.0, 3.0], [1.0, -1.0]], lam=0.25)
    h = torch.tensor([[1.0, 1.0], [0.0, -5.0]])
    y = torch.tensor([0, 1])
    s = 1 / math.sqrt(2)
    # item 0, class 0: cos = s; wrong classes: cos(h, e_y) = s, cos(h, diag) = 0 -> max s
    item0 = -0.25 * s + 0.75 * s**2
    # item 1, class 1: cos = -1; wrong: cos(h, e_x) = 0, cos(h, diag) = s -> max s
    item1 = -0.25 * -1.0 + 0.75 * s**2
    assert loss(h, y).item() == pytest.approx((item0 + item1) / 2, abs=1e-6)


def test_repulsion_is_hinged_at_zero() -> None:
    # Every wrong class has negative cosine: no repulsive term at all, only attraction.
    loss = loss_with([[1.0, 0.0], [-1.0, 0.0], [-1.0, -1.0]], lam=0.4)
    h = torch.tensor([[3.0, 0.5]])
    cos_own = 3.0 / math.hypot(3.0, 0.5)
    assert loss(h, torch.tensor([0])).item() == pytest.approx(-0.4 * cos_own, abs=1e-6)


def test_repulsion_uses_the_most_similar_wrong_class_only() -> None:
    loss = loss_with([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], lam=0.0)
    h = torch.tensor([[1.0, 0.0, 0.0]])
    # own class is 2 (cos 0); wrong classes: class 0 has cos 1.0, class 1 has cos 0.6
    assert loss(h, torch.tensor([2])).item() == pytest.approx(1.0, abs=1e-6)
    # own class is 0: the most similar wrong class is 1 (0.6), not 2 (0.0)
    assert loss(h, torch.tensor([0])).item() == pytest.approx(0.36, abs=1e-6)


def test_gradients_reach_encoder_output_and_class_vectors() -> None:
    loss = CosineCorelLoss(num_classes=4, embedding_dim=8)
    h = torch.randn(16, 8, requires_grad=True)
    loss(h, torch.randint(0, 4, (16,))).backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert loss.weight.grad is not None and loss.weight.grad.abs().sum() > 0


def test_empty_batch_gives_zero_not_nan() -> None:
    loss = CosineCorelLoss(num_classes=3, embedding_dim=4)
    value = loss(torch.empty(0, 4), torch.empty(0, dtype=torch.long))
    assert value.item() == 0.0


def test_wrong_shapes_are_refused_with_a_message() -> None:
    loss = CosineCorelLoss(num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match=r"embeddings must be \(N, 4\)"):
        loss(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be"):
        loss(torch.zeros(2, 4), torch.zeros(3, dtype=torch.long))


def test_default_lambda_is_the_papers_fashion_mnist_value() -> None:
    assert CosineCorelLoss(10, 128).lam == 0.15
