"""The OpenAPI schema as this server really answers.

- FastAPI documents a 422 as its own `HTTPValidationError`; ours is the one error shape
  (`ErrorBody`, service/api/errors.py), so every 422 says so.
- The limits are settings (COREL_MAX_K, COREL_MAX_INPUTS_PER_REQUEST), which the pydantic
  models cannot carry; they are written into the generated schema once, where a client or
  a fuzzer reads them: every `k` gets its `maximum`, every list of inputs its `maxItems`.
- What the loaded model takes is written in too: `data` as the model's input shape with
  its value range, a tensor's `shape`, and raw vectors of the model's dimension with the
  bounds `check_vector` applies. Until the model is loaded the schema goes without them
  and is not kept.

Rules that JSON Schema cannot state are in the field's description and enforced with a
422 by the service: an `image` must be a file Pillow decodes to the model's size; a
tensor's `b64` must hold exactly the bytes of its shape and dtype, with values in range;
/clustering/score takes one label per input (`labels` as long as `inputs` or `vectors`),
at least 2 classes and more inputs than classes; /clustering/cluster needs k_min <= k_max
(at most 20 values) and more inputs than clusters (`k`, or `k_max`, below the number of
inputs).

A query parameter that holds JSON (GET /items' `metadata`) is described by `content`
(application/json and its schema) rather than as a bare string. An optional query
parameter is left out to go without it: a query string has no null (`label=null` is the
label "null"), so its schema has no null either.

The links name what one answer gives the next request (the id of an item just created,
the cursor of the next page, the name of a class just added), so that a client, or the
stateful phase of a fuzzer, can follow them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from pydantic import TypeAdapter

from service.api.schemas.common import METADATA_JSON, METADATA_JSON_SCHEMA, MetadataFilter
from service.inference.inputs import EXAMPLE_DATA, EXAMPLE_TEXT, one_given
from service.items.types import VECTOR_MAX_ABS, VECTOR_MIN_PEAK

if TYPE_CHECKING:
    from corel.bundle import InputSpec
    from service.api.deps import AppState
    from service.settings import Settings

__all__ = ["with_limits"]

# Lists with one entry per input: at most COREL_MAX_INPUTS_PER_REQUEST long
INPUT_LISTS = ("inputs", "items", "queries", "vectors", "labels")
# Query parameters that hold JSON, with their schema and example (GET /items' metadata)
JSON_QUERY = {
    "metadata": {
        "schema": TypeAdapter(MetadataFilter).json_schema(),
        "example": {"colour": "white"},
    }
}
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
# (path, method, status) -> links of that answer: name -> (path, method, parameters)
ITEM_CREATED = "$response.body#/items/0/id"
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("/items", "post", "201"): {
        "GetItem": ("/items/{item_id}", "get", {"path.item_id": ITEM_CREATED}),
        "NeighboursOfItem": ("/neighbors", "get", {"query.id": ITEM_CREATED}),
        "DeleteItem": ("/items/{item_id}", "delete", {"path.item_id": ITEM_CREATED}),
    },
    ("/items", "get", "200"): {
        "NextPage": ("/items", "get", {"query.cursor": "$response.body#/next_cursor"}),
    },
    ("/items/{item_id}", "delete", "204"): {
        "GetDeletedItem": ("/items/{item_id}", "get", {"path.item_id": "$request.path.item_id"}),
    },
    ("/classes", "post", "201"): {
        "RemoveClass": ("/classes/{name}", "delete", {"path.name": "$response.body#/name"}),
    },
}


def with_limits(app: FastAPI, state: AppState) -> Callable[[], dict[str, Any]]:
    """A replacement for `app.openapi` that adds the limits to FastAPI's schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # FastAPI's generator, which keeps its result ...
        app.openapi_schema = None  # ... only once ours is whole
        schemas = schema.get("components", {}).get("schemas", {})
        schemas[METADATA_JSON] = METADATA_JSON_SCHEMA  # items' metadata refer to it
        for name in _request_models(schema):
            _limit_properties(schemas[name].get("properties", {}), state.settings)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if "422" in operation["responses"]:
                    operation["responses"]["422"] = {
                        "description": "The request is malformed: the message names the field",
                        "content": {"application/json": {"schema": ERROR_BODY}},
                    }
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "query" and "schema" in parameter:
                        _no_null(parameter)
                    if parameter["name"] == "k":
                        parameter["schema"]["maximum"] = state.settings.max_k
                    if parameter["in"] == "query" and parameter["name"] in JSON_QUERY:
                        # the route takes a string and parses it (FastAPI has no JSON query
                        # type): OpenAPI says what the string holds with `content`
                        del parameter["schema"]
                        parameter["content"] = {"application/json": JSON_QUERY[parameter["name"]]}
        _add_links(schema)
        if state.bundle is None:
            return schema  # the model's shapes come once it is loaded
        manifest = state.bundle.manifest
        if manifest.input.kind == "text":
            schema = _text_examples(schema)
            schemas = schema["components"]["schemas"]
        _model_inputs(schemas, manifest.input)
        _model_vectors(schemas, manifest.embedding_dim)
        _figure_names(schema, sorted(f for f in manifest.files if f.endswith(".png")))
        app.openapi_schema = schema
        return schema

    return openapi


def _no_null(parameter: dict[str, Any]) -> None:
    """An optional query parameter's `anyOf: [X, null]` (pydantic's `X | None`) as X: left
    out, it is absent; sent, it is never null."""
    schema = parameter["schema"]
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if "anyOf" in schema and len(branches) == 1:
        outer = {key: value for key, value in schema.items() if key != "anyOf"}
        parameter["schema"] = {**branches[0], **outer}


def _add_links(schema: dict[str, Any]) -> None:
    """The LINKS, by the operationIds FastAPI gave the operations."""
    paths = schema.get("paths", {})
    for (path, method, status), links in LINKS.items():
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": paths[to][to_method]["operationId"], "parameters": parameters}
            for name, (to, to_method, parameters) in links.items()
        }


def _figure_names(schema: dict[str, Any], figures: list[str]) -> None:
    """GET /model/figures/{name} serves only the PNG files the manifest lists: name them."""
    operation = schema.get("paths", {}).get("/model/figures/{name}", {}).get("get")
    for parameter in (operation or {}).get("parameters", []):
        if parameter["name"] == "name" and figures:
            parameter["schema"]["enum"] = figures


def _request_models(schema: dict[str, Any]) -> set[str]:
    """Names of the component schemas that request bodies use, directly or nested: the
    limits are on what a client sends, not on what it is sent back."""
    found: set[str] = set()
    todo = [
        body["content"]
        for path in schema.get("paths", {}).values()
        for operation in path.values()
        if (body := operation.get("requestBody"))
    ]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if ref.startswith("#/components/schemas/") and name not in found:
                found.add(name)
                todo.append(schema["components"]["schemas"][name])
            todo += node.values()
        elif isinstance(node, list):
            todo += node
    return found


def _limit_properties(properties: dict[str, Any], settings: Settings) -> None:
    if "k" in properties:
        _each_branch(properties["k"], "integer", "maximum", settings.max_k)
    for name in INPUT_LISTS:
        if name in properties:
            _each_branch(properties[name], "array", "maxItems", settings.max_inputs_per_request)


def _each_branch(schema: dict[str, Any], type_: str, key: str, value: int) -> None:
    """Lower `key` to `value` on the schema, or on its branches of `type_` when it is an
    anyOf (optional); a tighter bound the model already has is kept."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == type_:
            branch[key] = min(branch.get(key, value), value)


def _model_inputs(schemas: dict[str, Any], spec: InputSpec) -> None:
    """The forms of input the model takes: `text` for a text model, else `data` and a
    tensor's `shape` as the model takes them (and no `text`)."""
    if spec.kind == "text":
        _only_forms(schemas["Input"], ["text"])
        schemas["Input"]["properties"]["text"]["description"] = (
            f"A text, not only whitespace: its first {spec.max_length} tokens are embedded "
            "(`truncate`)"
        )
        return
    _only_forms(schemas["Input"], ["data", "image", "tensor"])
    number: dict[str, Any] = {"type": "number"}
    if spec.accepted_range is not None:
        number["minimum"], number["maximum"] = spec.accepted_range
    shapes = [list(spec.shape)]
    if spec.kind == "image" and spec.shape[0] == 1:
        shapes.insert(0, list(spec.shape[1:]))  # H x W for a one-channel model
    data = schemas["Input"]["properties"]["data"]
    data["anyOf"] = [*(_nested(shape, number) for shape in shapes), {"type": "null"}]
    data["description"] = f"Numbers in raw units, of shape {' or '.join(map(str, shapes))}" + (
        f", from {number['minimum']:g} to {number['maximum']:g}" if "minimum" in number else ""
    )
    image = schemas["Input"]["properties"]["image"]
    height, width = spec.shape[-2:]
    image["description"] = (
        f"A base64-encoded image file that Pillow reads, {width}x{height} pixels"
        if spec.kind == "image"
        else "Not for this model (it takes vectors): send `data`"
    )
    tensor = schemas["Tensor"]["properties"]
    tensor["shape"]["anyOf"] = [{"enum": shapes}, {"type": "null"}]
    tensor["b64"]["description"] = (
        "The array's bytes, base64 (C order, little-endian): exactly the bytes of its shape "
        "and dtype, the values in the range of `data`"
    )


def _only_forms(input_schema: dict[str, Any], forms: list[str]) -> None:
    """The Input schema with these of its forms (each a property, exactly one given)."""
    input_schema["properties"] = {
        name: field for name, field in input_schema["properties"].items() if name in forms
    }
    input_schema["oneOf"] = one_given(*forms)
    examples = [e for e in input_schema["examples"] if set(e) <= set(forms)]
    input_schema["examples"] = [e for n, e in enumerate(examples) if e not in examples[:n]]


def _text_examples(node: Any) -> Any:
    """The schema's examples with a text in place of each example image (text models)."""
    if node == EXAMPLE_DATA:
        return EXAMPLE_TEXT
    if isinstance(node, dict):
        return {key: _text_examples(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_text_examples(value) for value in node]
    return node


def _nested(shape: list[int], leaf: dict[str, Any]) -> dict[str, Any]:
    for size in reversed(shape):
        leaf = {"type": "array", "items": leaf, "minItems": size, "maxItems": size}
    return leaf


def _model_vectors(schemas: dict[str, Any], dim: int) -> None:
    """Raw vectors: `dim` float32 components within bounds, one large enough for a norm."""
    vector = {
        "type": "array",
        "items": {"type": "number", "minimum": -VECTOR_MAX_ABS, "maximum": VECTOR_MAX_ABS},
        "minItems": dim,
        "maxItems": dim,
        "contains": {"anyOf": [{"minimum": VECTOR_MIN_PEAK}, {"maximum": -VECTOR_MIN_PEAK}]},
        "description": f"A raw embedding of the current model: {dim} numbers, each at most "
        f"{VECTOR_MAX_ABS:g} in magnitude, at least one at least {VECTOR_MIN_PEAK:g}",
    }
    for name in ("ItemCreate", "NeighbourQuery"):
        schemas[name]["properties"]["vector"]["anyOf"][0] = vector
    for name in ("ScoreRequest", "ClusterRequest"):
        schemas[name]["properties"]["vectors"]["anyOf"][0]["items"] = vector
