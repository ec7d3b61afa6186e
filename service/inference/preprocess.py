"""From request `Input`s to model-ready arrays, following the manifest: one float32 array
per image or vector (`to_model_input`), token ids per text (`to_token_ids`)."""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from corel.bundle import InputSpec
from corel.text import TextTokenizer
from service.errors import PayloadTooLargeError, ValidationFailedError
from service.inference.inputs import WHITESPACE, Input, Tensor

Image.MAX_IMAGE_PIXELS = None  # we enforce our own, configurable limit below


def to_model_input(
    item: Input, spec: InputSpec, *, max_pixels: int, position: int = 0
) -> np.ndarray:
    """One item (no batch axis) as the encoder takes it (`InputSpec.to_model`)."""
    where = f"inputs[{position}]"
    if item.text is not None:
        raise ValidationFailedError(
            f"{where}.text: this model takes {spec.kind}s, not text: send `data`"
            + (", `image` or `tensor`" if spec.kind == "image" else " or `tensor`")
        )
    if item.image is not None:
        raw = _decode_image(item.image, spec, max_pixels, where)
    elif item.tensor is not None:
        raw = _checked(_from_tensor(item.tensor, spec, where), spec, max_pixels, f"{where}.tensor")
    else:
        raw = _checked(_from_numbers(item.data, where), spec, max_pixels, f"{where}.data")
    return spec.to_model(raw)


@dataclass(frozen=True)
class TokenIds:
    rows: list[np.ndarray]  # (length,) int64 per input, its padding left to the batch
    truncated: list[int]  # positions of the inputs cut to the model's max_length tokens


def to_token_ids(
    inputs: Sequence[Input], spec: InputSpec, tokenizer: TextTokenizer, *, truncate: bool
) -> TokenIds:
    """Texts as the encoder takes them, tokenized as one batch. An input of another kind,
    a text of whitespace alone or, with `truncate` false, one longer than the model's
    max_length tokens is a 422 naming it."""
    texts = []
    for n, item in enumerate(inputs):
        if item.text is None:
            raise ValidationFailedError(f"inputs[{n}]: this model takes text: send `text`")
        texts.append(item.text)
    blank = [n for n, text in enumerate(texts) if not text.strip(WHITESPACE)]
    if blank:
        raise ValidationFailedError(
            f"inputs[{blank[0]}].text is only whitespace", details={"inputs": blank}
        )
    batch = tokenizer.encode(texts)
    truncated = np.flatnonzero(batch.truncated).tolist()
    if truncated and not truncate:
        raise ValidationFailedError(
            f"inputs[{truncated[0]}].text is longer than this model's {tokenizer.max_length} "
            "tokens; send it shorter, or `truncate: true` to keep its first tokens",
            details={"inputs": truncated, "max_length": tokenizer.max_length},
        )
    # a text the tokenizer keeps nothing of (combining marks alone) is one unknown word
    rows = [
        batch.ids[n, :length] if length else np.array([tokenizer.unk_id], np.int64)
        for n, length in enumerate(batch.lengths.tolist())
    ]
    return TokenIds(rows, truncated)


def _from_numbers(data: object, where: str) -> np.ndarray:
    try:
        parsed = np.asarray(data)  # no dtype yet: numpy would quietly parse "1" as 1.0
    except (ValueError, TypeError) as exc:
        raise ValidationFailedError(
            f"{where}.data must be a rectangular array of numbers ({exc})"
        ) from exc
    if parsed.dtype.kind not in "iuf":  # bool, str, object (ragged or huge ints), ...
        raise ValidationFailedError(
            f"{where}.data must be a rectangular array of numbers, got {_kind(parsed)}"
        )
    return parsed.astype(np.float64)  # checked before float32 could turn 1e39 into inf


def _from_tensor(tensor: Tensor, spec: InputSpec, where: str) -> np.ndarray:
    try:
        payload = base64.b64decode(tensor.b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailedError(f"{where}.tensor.b64 is not valid base64 ({exc})") from exc
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    shape = tensor.shape if tensor.shape is not None else list(spec.shape)
    if any(size < 1 for size in shape):
        raise ValidationFailedError(f"{where}.tensor.shape {shape} has a size below 1")
    expected_bytes = math.prod(shape) * dtype.itemsize
    if len(payload) != expected_bytes:
        raise ValidationFailedError(
            f"{where}.tensor has {len(payload)} bytes; shape {shape} of {tensor.dtype} takes "
            f"{expected_bytes}",
            details={"bytes": len(payload), "expected": expected_bytes},
        )
    return np.frombuffer(payload, dtype).reshape(shape).astype(np.float32)


def _checked(raw: np.ndarray, spec: InputSpec, max_pixels: int, where: str) -> np.ndarray:
    """Size, finiteness, shape and range of an array of numbers from `data` or `tensor`."""
    if raw.size > max_pixels * max(spec.shape[0], 1):
        raise PayloadTooLargeError(f"{where} has {raw.size} values; the limit is {max_pixels}")
    if not np.isfinite(raw).all():
        raise ValidationFailedError(f"{where} contains NaN or infinite values")
    # the shape first: an empty array has no min or max
    expected = tuple(spec.shape)
    if spec.kind == "image" and raw.ndim == 2 and expected[0] == 1:
        raw = raw[None]  # H x W for a one-channel model
    if raw.shape != expected:
        raise ValidationFailedError(
            f"{where} has shape {list(raw.shape)}; this model takes {_accepted_shapes(spec)}",
            details={"expected": list(expected)},
        )
    accepted = spec.accepted_range
    if accepted is not None and (raw.min() < accepted[0] or raw.max() > accepted[1]):
        low, high = accepted
        raise ValidationFailedError(
            f"{where} has values from {raw.min():g} to {raw.max():g}; this model takes raw "
            f"values from {low:g} to {high:g}",
            details={"range": [low, high]},
        )
    return raw


def _decode_image(encoded: str | None, spec: InputSpec, max_pixels: int, where: str) -> np.ndarray:
    if spec.kind != "image":
        raise ValidationFailedError(f"{where}.image: this model takes vectors, send `data`")
    try:
        payload = base64.b64decode(encoded or "", validate=True)
        image: Image.Image = Image.open(io.BytesIO(payload))
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailedError(f"{where}.image is not valid base64 ({exc})") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValidationFailedError(f"{where}.image is not an image file Pillow can read") from exc
    if image.width * image.height > max_pixels:
        raise PayloadTooLargeError(
            f"{where}.image has {image.width}x{image.height} pixels; the limit is {max_pixels}"
        )
    channels, height, width = spec.shape
    try:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            if not getattr(spec, "resize", False):
                raise ValidationFailedError(
                    f"{where}.image is {image.width}x{image.height}; this model takes "
                    f"{width}x{height} (its manifest does not allow resizing)"
                )
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32)
    except OSError as exc:  # truncated or corrupt image data
        raise ValidationFailedError(f"{where}.image could not be decoded ({exc})") from exc
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _kind(parsed: np.ndarray) -> str:
    return {"b": "true/false values", "U": "strings", "S": "strings"}.get(
        parsed.dtype.kind, "values that are not all numbers"
    )


def _accepted_shapes(spec: InputSpec) -> str:
    shape = list(spec.shape)
    if spec.kind == "image" and shape[0] == 1:
        return f"{shape[1:]} (H x W) or {shape} (C x H x W)"
    return str(shape)
