"""A stored input as a PNG image, for people and pages to look at (GET /items/{id}/input.png).

The stored input is parsed exactly as the model would take it (`to_model_input`), then the
manifest's scaling is undone, so what is shown is what the model saw: an image sent larger
than the model's size and resized shows at the model's size.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from corel.bundle import InputSpec
from service.errors import NotFoundError
from service.inference.inputs import Input
from service.inference.preprocess import to_model_input

__all__ = ["input_png"]


def input_png(source: dict[str, Any], spec: InputSpec, *, max_pixels: int) -> bytes:
    """PNG bytes of a stored input; NotFoundError when the model takes no images.

    ValidationFailedError when the stored input no longer fits the model (another shape).
    """
    if spec.kind != "image" or spec.shape[0] not in (1, 3):
        raise NotFoundError("this model takes no images: its inputs have no picture")
    model_input = to_model_input(Input.model_validate(source), spec, max_pixels=max_pixels)
    raw = spec.to_raw(model_input)  # back to the units the client sent
    low, high = spec.accepted_range or (0.0, 255.0)  # e.g. 0..16 for scikit-learn's digits
    pixels = np.clip(np.rint((raw - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
    # (C, H, W) -> H x W gray or H x W x 3
    image = Image.fromarray(pixels[0] if spec.shape[0] == 1 else pixels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
