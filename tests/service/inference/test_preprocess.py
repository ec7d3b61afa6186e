"""Preprocessing: from an `Input` to the model's array, by the manifest's input spec."""

import numpy as np
import pytest

from corel.bundle import InputSpec
from service.errors import PayloadTooLargeError, ValidationFailedError
from service.inference.inputs import Input
from service.inference.preprocess import to_model_input
from tests.service.conftest import png_base64

GREY = InputSpec(kind="image", shape=[1, 28, 28], scale=1 / 255, offset=0.0)


def test_preprocess_scales_raw_values_by_the_manifest() -> None:
    spec = InputSpec(kind="image", shape=[1, 2, 2], scale=0.5, offset=-1.0)
    out = to_model_input(Input(data=[[0, 2], [4, 6]]), spec, max_pixels=100)
    assert out.dtype == np.float32
    assert out.tolist() == [[[-1.0, 0.0], [1.0, 2.0]]]


def test_preprocess_resizes_only_when_the_manifest_allows(fashion_sample) -> None:
    big = np.kron(fashion_sample[0][0].squeeze(), np.ones((2, 2)))  # 56 x 56
    item = Input(image=png_base64(big))
    with pytest.raises(ValidationFailedError, match="does not allow resizing"):
        to_model_input(item, GREY, max_pixels=10_000)
    resizing = GREY.model_copy(update={"resize": True})
    assert to_model_input(item, resizing, max_pixels=10_000).shape == (1, 28, 28)


def test_preprocess_converts_colour_images_to_the_model_channels(fashion_sample) -> None:
    grey = fashion_sample[0][0].squeeze().astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    out = to_model_input(Input(image=png_base64(rgb)), GREY, max_pixels=10_000)
    assert out.shape == (1, 28, 28)
    assert np.allclose(out * 255, grey, atol=1)
    colour = InputSpec(kind="image", shape=[3, 28, 28], scale=1 / 255)
    assert to_model_input(Input(image=png_base64(grey)), colour, max_pixels=10_000).shape == (
        3,
        28,
        28,
    )


def test_preprocess_vector_bundles_take_flat_lists_only() -> None:
    spec = InputSpec(kind="vector", shape=[4], scale=2.0)
    assert to_model_input(Input(data=[1, 2, 3, 4]), spec, max_pixels=100).tolist() == [2, 4, 6, 8]
    with pytest.raises(ValidationFailedError, match="takes \\[4\\]"):
        to_model_input(Input(data=[1, 2, 3]), spec, max_pixels=100)
    with pytest.raises(ValidationFailedError, match="send `data`"):
        to_model_input(Input(image=png_base64(np.zeros((2, 2)))), spec, max_pixels=100)


def test_preprocess_refuses_infinity_and_oversized_arrays() -> None:
    with pytest.raises(ValidationFailedError, match="NaN or infinite"):
        to_model_input(Input(data=[[float("inf")] * 28] * 28), GREY, max_pixels=10_000)
    with pytest.raises(PayloadTooLargeError):
        to_model_input(Input(data=[[0] * 28] * 28), GREY, max_pixels=100)
