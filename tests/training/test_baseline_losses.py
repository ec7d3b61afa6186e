"""The baseline losses (CCE, center, Gaussian-COREL, contrastive) and every class rule,
against values worked out by hand or with plain torch ops on small tensors."""

import math
from typing import get_args

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corel.class_rule import RULES, rule_for
from training.config import LossName
from training.losses import (
    LOSS_MANIFEST_NAMES,
    TORCH_SCORES,
    CenterLoss,
    ClassVectorLoss,
    ContrastiveLoss,
    CosineCorelLoss,
    CrossEntropyLoss,
    GaussianCorelLoss,
    build_loss,
)


def with_weight(
    loss: ClassVectorLoss, weight: list[list[float]], bias: list[float] | None = None
) -> ClassVectorLoss:
    with torch.no_grad():
        loss.weight.copy_(torch.tensor(weight))
        if bias is not None:
            loss.bias.copy_(torch.tensor(bias))
    return loss


# -- cross-entropy --------------------------------------------------------------------------


def test_cce_matches_hand_computation() -> None:
    loss = with_weight(CrossEntropyLoss(2, 2), [[1.0, 0.0], [0.0, 1.0]], bias=[0.5, -0.5])
    h = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    # item 0: logits (1.5, 1.5) -> -log(1/2); item 1: logits (0.5, -0.5), class 0
    item0 = math.log(2.0)
    item1 = -math.log(math.exp(0.5) / (math.exp(0.5) + math.exp(-0.5)))
    assert loss(h, torch.tensor([1, 0])).item() == pytest.approx((item0 + item1) / 2, abs=1e-6)


def test_cce_matches_plain_torch_on_random_tensors() -> None:
    torch.manual_seed(0)
    loss = CrossEntropyLoss(5, 7)
    with torch.no_grad():
        loss.bias.copy_(torch.randn(5))
    h, y = torch.randn(9, 7), torch.randint(0, 5, (9,))
    logits = h @ loss.weight.T + loss.bias
    expected = -(logits.gather(1, y[:, None]).squeeze(1) - logits.exp().sum(1).log()).mean()
    assert loss(h, y).item() == pytest.approx(expected.item(), abs=1e-5)


# -- center loss ----------------------------------------------------------------------------


def center_loss_with_zero_head(lam: float, alpha: float, centers: list[list[float]]) -> CenterLoss:
    loss = CenterLoss(3, 2, lam=lam, alpha=alpha)
    with torch.no_grad():
        loss.weight.zero_()  # every logit 0: the CCE part is log K for any h
        loss.centers.copy_(torch.tensor(centers))
    return loss


def test_center_loss_matches_hand_computation_and_uses_the_old_centres() -> None:
    loss = center_loss_with_zero_head(0.5, 0.5, [[1.0, 0.0], [0.0, 0.0], [7.0, 7.0]])
    h, y = torch.tensor([[3.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    # CCE: log 3 each; pull: 1/2 * mean(||(3,0)-(1,0)||^2, ||(0,2)-(0,0)||^2) = 1/2 * 4 = 2
    assert loss(h, y).item() == pytest.approx(math.log(3.0) + 0.5 * 2.0, abs=1e-6)


def test_center_update_follows_wen_et_al() -> None:
    # c_j -= alpha * sum_{i: y_i = j}(c_j - h_i) / (1 + n_j); absent classes stay put
    loss = center_loss_with_zero_head(0.5, 0.5, [[1.0, 0.0], [0.0, 0.0], [7.0, 7.0]])
    loss.train()
    loss(torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 4.0]]), torch.tensor([0, 1, 1]))
    # class 0: n=1, delta = ((1,0) - (3,0)) / 2 = (-1, 0) -> (1,0) + 0.5 * (1, 0) = (1.5, 0)
    # class 1: n=2, delta = (2*(0,0) - (0,6)) / 3 = (0, -2) -> (0, 1)
    expected = torch.tensor([[1.5, 0.0], [0.0, 1.0], [7.0, 7.0]])
    assert torch.allclose(loss.centers, expected, atol=1e-6)


def test_center_update_only_while_training_and_not_by_gradient() -> None:
    loss = center_loss_with_zero_head(0.5, 0.5, [[1.0, 0.0], [0.0, 0.0], [7.0, 7.0]])
    before = loss.centers.clone()
    loss.eval()
    loss(torch.tensor([[3.0, 0.0]]), torch.tensor([0]))
    assert torch.equal(loss.centers, before)
    assert "centers" not in dict(loss.named_parameters())
    assert "centers" in loss.state_dict()  # saved with the best epoch's weights


# -- Gaussian-COREL -------------------------------------------------------------------------


def gaussian(weight: list[list[float]], lam: float = 0.85, gamma: float = 0.5) -> GaussianCorelLoss:
    return with_weight(GaussianCorelLoss(len(weight), len(weight[0]), lam=lam, gamma=gamma), weight)


def test_gaussian_corel_matches_hand_computation() -> None:
    loss = gaussian([[0.0, 0.0], [3.0, 4.0]])
    h = torch.tensor([[0.0, 0.0]])
    # squared distances (0, 25), similarities -gamma * d^2 = (0, -12.5)
    repel = math.log(1.0 + math.exp(-12.5))
    assert loss(h, torch.tensor([0])).item() == pytest.approx(0.15 * repel, abs=1e-6)
    assert loss(h, torch.tensor([1])).item() == pytest.approx(0.85 * 12.5 + 0.15 * repel, rel=1e-6)


def test_gaussian_corel_matches_plain_torch_on_random_tensors() -> None:
    torch.manual_seed(1)
    loss = GaussianCorelLoss(4, 6, lam=0.3, gamma=0.7)
    h, y = torch.randn(8, 6), torch.randint(0, 4, (8,))
    sq = ((h[:, None, :] - loss.weight[None, :, :]) ** 2).sum(-1)  # (N, K)
    expected = (
        0.3 * 0.7 * sq.gather(1, y[:, None]).squeeze(1)
        + 0.7 * torch.log(torch.exp(-0.7 * sq).sum(1))
    ).mean()
    assert loss(h, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_gaussian_corel_is_stable_with_huge_distances() -> None:
    # Every similarity is far below float32's exp range (exp(-200) == 0): a naive
    # log(sum(exp)) gives -inf; the stable one gives max + log(1 + e^-4800) = -200.
    loss = gaussian([[0.0, 0.0], [100.0, 20.0]])
    h = torch.tensor([[100.0, 0.0]], requires_grad=True)
    naive = torch.log(torch.exp(-0.5 * torch.tensor([10_000.0, 400.0])).sum())
    assert torch.isinf(naive)
    value = loss(h, torch.tensor([1]))
    assert value.item() == pytest.approx(0.85 * 200.0 + 0.15 * -200.0, rel=1e-6)
    value.backward()
    assert torch.isfinite(h.grad).all() and torch.isfinite(loss.weight.grad).all()


def test_gaussian_corel_gradient_is_finite_when_h_sits_on_its_class_vector() -> None:
    loss = gaussian([[1.0, 2.0], [0.0, 0.0]])
    h = torch.tensor([[1.0, 2.0]], requires_grad=True)
    loss(h, torch.tensor([0])).backward()
    assert torch.isfinite(h.grad).all()


# -- Siamese contrastive ----------------------------------------------------------------------


def test_contrastive_matches_hand_computation() -> None:
    # normalised: e_x, e_y, e_x (the norm of the third must not matter)
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    loss = ContrastiveLoss(2, 2, margin=1.0)
    # labels (0, 1, 0): the two different pairs are sqrt(2) apart, beyond the margin;
    # the similar pair coincides: every term is zero
    assert loss(h, torch.tensor([0, 1, 0])).item() == pytest.approx(0.0, abs=1e-6)
    # labels (0, 0, 1): pair (0,1) similar, d^2 = 2; pair (0,2) different, d = 0 -> 1^2;
    # pair (1,2) different, d = sqrt(2) > margin -> 0; mean over 3 pairs, halved
    assert loss(h, torch.tensor([0, 0, 1])).item() == pytest.approx((2 + 1 + 0) / 3 / 2, abs=1e-6)
    wide = ContrastiveLoss(2, 2, margin=2.0)
    expected = (2 + 4 + (2 - math.sqrt(2)) ** 2) / 3 / 2
    assert wide(h, torch.tensor([0, 0, 1])).item() == pytest.approx(expected, abs=1e-6)


def test_contrastive_class_vectors_are_normalised_class_means() -> None:
    loss = ContrastiveLoss(3, 2)
    s = 1 / math.sqrt(2)
    loss.fit_class_vectors(
        torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 3.0]]), torch.tensor([0, 1, 1])
    )
    assert torch.allclose(loss.weight[0], torch.tensor([1.0, 0.0]))
    assert torch.allclose(loss.weight[1], F.normalize(torch.tensor([s / 2, (1 + s) / 2]), dim=0))
    assert not list(loss.parameters())  # nothing for the optimiser: W is fitted, not learned


def test_contrastive_single_item_batch_has_no_pairs_and_zero_loss() -> None:
    value = ContrastiveLoss(2, 3)(torch.randn(1, 3), torch.tensor([1]))
    assert value.item() == 0.0


# -- class rules: torch scores and the service's numpy scores agree -------------------------

W = [[1.0, 0.0], [4.0, 4.0]]
H = [[1.5, 1.4]]
# h is near w_0 in distance, but points along w_1 and has the larger dot product with it
RULE_CASES = [
    (CosineCorelLoss(2, 2), None, 1),
    (ContrastiveLoss(2, 2), None, 1),
    (GaussianCorelLoss(2, 2), None, 0),
    (CrossEntropyLoss(2, 2), [0.0, 0.0], 1),  # 1.5 vs 11.6
    (CenterLoss(2, 2), [11.0, 0.0], 0),  # 12.5 vs 11.6: the bias decides
]


@pytest.mark.parametrize(
    ("loss", "bias", "expected"),
    RULE_CASES,
    ids=["cosine", "contrastive", "euclidean", "dot", "dot-bias"],
)
def test_class_rule_predicts_the_right_class(
    loss: ClassVectorLoss, bias: list[float] | None, expected: int
) -> None:
    with_weight(loss, W, bias)
    h = torch.tensor(H)
    torch_scores = loss.scores(h).detach()
    numpy_bias = None if loss.bias is None else loss.bias.detach().numpy()
    numpy_scores = rule_for(loss.class_rule).scores(np.array(H), np.array(W), numpy_bias)
    np.testing.assert_allclose(torch_scores.numpy(), numpy_scores, rtol=1e-5, atol=1e-5)
    assert int(torch_scores.argmax(1)[0]) == expected == int(numpy_scores.argmax(1)[0])


def test_class_rules_on_a_constructed_cloud() -> None:
    # three classes on the axes; items scattered around 3 * w_k are predicted k by every rule
    rng = np.random.default_rng(0)
    w = np.eye(3, dtype=np.float32)
    y = np.repeat(np.arange(3), 20)
    h = (3.0 * w[y] + 0.3 * rng.standard_normal((60, 3))).astype(np.float32)
    for name in ("cosine", "gaussian", "cce"):
        loss = with_weight(
            build_loss(name, 3, 3), w.tolist(), [0.0, 0.0, 0.0] if name == "cce" else None
        )
        predicted = loss.scores(torch.from_numpy(h)).argmax(1).numpy()
        assert (predicted == y).all(), name
        bias = None if loss.bias is None else loss.bias.detach().numpy()
        assert (rule_for(loss.class_rule).scores(h, w, bias).argmax(1) == y).all(), name


def test_every_class_rule_has_a_torch_twin() -> None:
    assert set(TORCH_SCORES) == set(RULES)
    assert set(LOSS_MANIFEST_NAMES) == set(get_args(LossName))


@pytest.mark.parametrize("name", get_args(LossName))
def test_torch_scores_equal_the_bundle_rule_on_random_tensors(name: str) -> None:
    # what training selects the best epoch by must be what the service predicts with
    torch.manual_seed(0)
    loss = build_loss(name, 7, 5)
    with torch.no_grad():
        loss.weight.copy_(3.0 * torch.randn(7, 5))
        if loss.bias is not None:
            loss.bias.copy_(torch.randn(7))
    h = 2.0 * torch.randn(40, 5)
    torch_scores = loss.scores(h).detach().numpy()  # (N, K)
    bias = None if loss.bias is None else loss.bias.detach().numpy()
    numpy_scores = rule_for(loss.class_rule).scores(h.numpy(), loss.weight.detach().numpy(), bias)
    np.testing.assert_allclose(torch_scores, numpy_scores, rtol=1e-4, atol=1e-4)
    assert (torch_scores.argmax(1) == numpy_scores.argmax(1)).all()


# -- degenerate batches ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cce", "center", "gaussian", "contrastive", "cosine"])
def test_empty_batch_gives_zero_loss_not_nan(name: str) -> None:
    loss = build_loss(name, 3, 4)
    h = torch.empty(0, 4, requires_grad=True)
    value = loss(h, torch.empty(0, dtype=torch.long))
    assert value.item() == 0.0
    value.backward()
    assert h.grad is not None and not torch.isnan(h.grad).any()


def test_paper_lambdas_are_the_defaults() -> None:
    assert build_loss("cosine", 2, 2).lam == 0.15
    assert build_loss("gaussian", 2, 2).lam == 0.85
    assert build_loss("center", 2, 2).lam == 0.35
