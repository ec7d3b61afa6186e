"""The auxiliary objectives (training/losses/auxiliary.py): the NT-Xent against a hand
computation, the per-image views, the synthetic outliers, and a short training with each
whose auxiliary term falls."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from training.config import TrainConfig
from training.data import load_dataset
from training.encoders import build_encoder
from training.losses import build_loss
from training.losses.auxiliary import (
    InstanceContrastLoss,
    augment_each,
    mix_other_class,
    orthogonal_to_classes,
    rotate_each,
)
from training.train import auxiliary_term, build_aux_head, forward_with_layer, train


def test_nt_xent_matches_hand_computation_with_an_identity_head() -> None:
    loss = InstanceContrastLoss(2, temperature=1.0, hidden=2, out=2)
    loss.head = nn.Identity()  # type: ignore[assignment]
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # each of the 4 rows: its other view at cosine 1, the two others at cosine 0
    expected = -math.log(math.e / (math.e + 2.0))
    assert loss(z1, z2).item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_is_low_when_views_match_and_high_when_they_are_swapped() -> None:
    torch.manual_seed(0)
    loss = InstanceContrastLoss(16, temperature=0.2)
    z = torch.randn(32, 16)
    assert loss(z, z).item() < loss(z, z[torch.randperm(32)]).item()


def test_views_are_drawn_per_image_and_keep_the_shape() -> None:
    generator = torch.Generator().manual_seed(0)
    batch = torch.zeros(64, 1, 10, 10)
    batch[:, :, 4:6, 4:6] = 1.0  # one bright square in the middle
    views = augment_each(batch, generator)
    assert views.shape == batch.shape
    # the square lands in several places: shifts differ between images of one batch
    positions = {tuple(torch.nonzero(v[0])[0].tolist()) for v in views}
    assert len(positions) > 5
    assert torch.allclose(views.sum((1, 2, 3)), batch.sum((1, 2, 3)))  # shifted, not cut


def test_rotations_are_quarter_turns_drawn_per_image() -> None:
    generator = torch.Generator().manual_seed(0)
    batch = torch.zeros(32, 1, 5, 5)
    batch[:, :, 0, 0] = 1.0  # the top-left corner lit
    turned, turns = rotate_each(batch, generator)
    assert set(turns.tolist()) == {0, 1, 2, 3}
    for image, k in zip(turned, turns.tolist(), strict=True):
        assert torch.equal(image, torch.rot90(batch[0], k, dims=(-2, -1)))
    _, half_turns = rotate_each(torch.zeros(16, 1, 4, 6), generator)  # not square
    assert set(half_turns.tolist()) <= {0, 2}


def test_outliers_mix_two_classes_and_the_term_rewards_orthogonality() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.arange(8, dtype=torch.float32).reshape(8, 1) * torch.ones(8, 3)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    mixed = mix_other_class(x, y, generator)
    assert 0 < len(mixed) <= 8
    # every outlier is the mean of a class-0 and a class-1 item: its value lies in 2..5
    assert ((mixed >= 2.0) & (mixed <= 5.0)).all()
    w = torch.eye(2)
    assert orthogonal_to_classes(torch.tensor([[1.0, 0.0]]), w).item() == pytest.approx(1.0)
    assert orthogonal_to_classes(torch.tensor([[-1.0, -1.0]]), w).item() == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("aux", "layer"),
    [
        ("instance", "features"),
        ("instance", "h"),
        ("rotation", "features"),
        ("outlier", "features"),
    ],
)
def test_a_step_of_each_objective_lowers_its_term(aux: str, layer: str) -> None:
    torch.manual_seed(0)
    data = load_dataset("digits", data_dir="")
    config = TrainConfig(dataset="digits", aux_loss=aux, aux_layer=layer, aux_weight=1.0)  # type: ignore[arg-type]
    encoder = build_encoder("auto", data.kind, data.shape, 128, 0.1)
    loss = build_loss("cosine", len(data.labels), 128)
    head = build_aux_head(config, encoder)
    params = [*encoder.parameters(), *loss.parameters()]
    params += [] if head is None else list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    xb = torch.from_numpy(data.model_input(data.x_train[:128]))
    yb = torch.from_numpy(data.y_train[:128])

    def term(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        _, z = forward_with_layer(encoder, xb, layer)
        return auxiliary_term(config, encoder, loss, head, xb, yb, z, generator)

    before = float(term(1))
    for _ in range(20):
        value = term(1)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert float(term(1)) < before


def test_training_with_the_instance_term_keeps_the_class_rule() -> None:
    data = load_dataset("digits", data_dir="")
    config = TrainConfig(dataset="digits", aux_loss="instance", epochs=6, threads=1)
    result = train(config, data, progress=False)
    assert result.best_val_accuracy > 0.6  # chance is 0.10
    assert np.isfinite([row.train_loss for row in result.history]).all()


def test_the_default_objective_trains_exactly_as_before() -> None:
    data = load_dataset("digits", data_dir="")
    plain = train(TrainConfig(dataset="digits", epochs=2, threads=1), data, progress=False)
    off = TrainConfig(dataset="digits", epochs=2, threads=1, aux_loss="none", aux_weight=0.7)
    again = train(off, data, progress=False)
    assert [r.train_loss for r in plain.history] == [r.train_loss for r in again.history]
