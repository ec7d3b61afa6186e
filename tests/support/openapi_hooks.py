"""Schemathesis hooks: generated bodies made valid where JSON Schema cannot say what is.

Loaded by `schemathesis run` through SCHEMATHESIS_HOOKS=tests.support.openapi_hooks (see
tests/service/api/test_openapi_contract.py). The schema states shapes, ranges and limits;
these rules it cannot state, and the service answers 422 when they are broken (the schema's
descriptions say so, service/api/openapi.py lists them):

- an `image` is a file Pillow decodes, of the model's size;
- a tensor's `b64` holds exactly the bytes of its shape and dtype, values in range;
- /clustering/score: one label per input, at least 2 classes, more inputs than classes;
- /clustering/cluster: k_min <= k_max (at most 20 values), more inputs than clusters.

Only values of the right type are replaced, so a case that breaks the schema elsewhere
still does: schemathesis checks each case against the schema again after a hook, and
judges the answer by what the case then is (valid: must be accepted; not: refused).
"""

from __future__ import annotations

import base64
import copy
import io
import json
from typing import Any

import numpy as np
import schemathesis
from PIL import Image

from service.api.schemas.clustering import MAX_CLUSTERS, MAX_K_CANDIDATES
from service.maps.latent_map import MAX_ITEMS
from tests.conftest import DEFAULT_BUNDLE

_MANIFEST = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())
_, HEIGHT, WIDTH = _MANIFEST["input"]["shape"]
DIM = int(_MANIFEST["embedding_dim"])


def _pixels(seed: int) -> np.ndarray:  # (H, W) uint8
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)


def _png(seed: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(_pixels(seed)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _tensor_b64(dtype: str, seed: int) -> str:
    pixels = _pixels(seed).astype("<f4" if dtype == "float32" else np.uint8)
    return base64.b64encode(pixels.tobytes()).decode()


def _valid_input(value: Any, seed: int) -> None:
    """An image or a tensor given as a string made a real one, in place."""
    if not isinstance(value, dict):
        return
    if isinstance(value.get("image"), str):
        value["image"] = _png(seed)
    tensor = value.get("tensor")
    if isinstance(tensor, dict) and isinstance(tensor.get("b64"), str):
        dtype = tensor.get("dtype", "uint8")
        tensor["b64"] = _tensor_b64(dtype if dtype in ("uint8", "float32") else "uint8", seed)


def _extra_source(body: dict[str, Any], n: int) -> Any:
    """One more input (or vector) of the kind the batch has, distinct from the others."""
    if isinstance(body.get("vectors"), list):
        return np.random.default_rng(n).normal(size=DIM).tolist()
    inputs = body.get("inputs") or [{}]
    if isinstance(inputs[0], dict) and "text" in inputs[0]:  # a text model's batch
        return {"text": f"a generated text, number {n}"}
    return {"data": _pixels(n).tolist()}


def _batch_size(body: dict[str, Any], at_least: int) -> int | None:
    """Grow the batch (inputs or vectors) to `at_least`; its size, or None if it is not a list."""
    source = body.get("inputs") if body.get("inputs") is not None else body.get("vectors")
    if not isinstance(source, list):
        return None
    while len(source) < at_least:
        source.append(_extra_source(body, len(source)))
    return len(source)


def _score_rules(body: dict[str, Any]) -> None:
    labels = body.get("labels")
    if isinstance(labels, list) and all(type(label) in (int, str) for label in labels):
        size = _batch_size(body, 3)
        if size is not None:
            body["labels"] = [n % 2 for n in range(size)]  # 2 classes, more inputs than that


def _count(value: Any) -> int | None:
    """A K the schema allows (30.0 is 30): only those are worth a batch big enough for them."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= MAX_CLUSTERS:
        return value
    return None


def _cluster_rules(body: dict[str, Any]) -> None:
    k, k_min, k_max = (_count(body.get(key, default)) for key, default in
                       (("k", None), ("k_min", 2), ("k_max", 10)))  # fmt: skip
    if k is not None:
        _batch_size(body, k + 1)
    elif body.get("k") is None and k_min is not None and k_max is not None:
        k_min, k_max = min(k_min, k_max), max(k_min, k_max)
        k_max = min(k_max, k_min + MAX_K_CANDIDATES - 1)
        if "k_min" in body or "k_max" in body:
            body["k_min"], body["k_max"] = k_min, k_max
        _batch_size(body, k_max + 1)


def _map_rules(case: schemathesis.Case) -> None:
    """t-SNE takes fewer items than PCA, the schema's maximum (a rule across two parameters)."""
    limit, method = case.query.get("limit"), case.query.get("method", "pca")
    if method == "tsne" and isinstance(limit, int) and limit > MAX_ITEMS["tsne"]:
        case.query = {**case.query, "limit": MAX_ITEMS["tsne"]}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # a negative case may send anything


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    if case.path == "/map" and isinstance(case.query, dict):
        _map_rules(case)
    if not isinstance(case.body, dict):
        return case
    # A copy: the coverage phase derives other cases from the same body objects
    body = copy.deepcopy(case.body)
    for n, value in enumerate(_list(body.get("inputs"))):
        _valid_input(value, n)
    for key, field in (("items", "input"), ("queries", "input")):
        for n, entry in enumerate(_list(body.get(key))):
            if isinstance(entry, dict):
                _valid_input(entry.get(field), n)
    if case.path == "/clustering/score":
        _score_rules(body)
    elif case.path == "/clustering/cluster":
        _cluster_rules(body)
    if body != case.body:
        case.body = body
    return case


@schemathesis.hook
def before_add_examples(
    context: schemathesis.HookContext, examples: list[schemathesis.Case]
) -> None:
    """The same for the cases built from the schema's examples (the examples phase runs no
    `map_case`): the examples of one field combined with those of another can break a rule
    between them."""
    for case in examples:
        map_case(context, case)
