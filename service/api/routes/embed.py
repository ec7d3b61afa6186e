"""POST /embed and POST /classify."""

from __future__ import annotations

import base64

import numpy as np

from corel.class_rule import l2_normalise
from service import metrics
from service.api.deps import InferenceDep, check_input_count
from service.api.json_route import json_router
from service.api.schemas.errors import errors
from service.api.schemas.inference import (
    Classification,
    ClassifyRequest,
    ClassifyResponse,
    EmbedRequest,
    EmbedResponse,
)
from service.errors import ValidationFailedError

router = json_router("inference")


@router.post("/embed", responses=errors(408, 413, 415, 422, 429, 503))
async def embed(body: EmbedRequest, run: InferenceDep) -> EmbedResponse:
    """Embeddings of the inputs: L2-normalised by default, the raw last layer on request."""
    check_input_count(len(body.inputs), run.settings)
    embedded = await run.embedder.embed_inputs(body.inputs, truncate=body.truncate)
    h = embedded.vectors
    out = l2_normalise(h) if body.normalize else h
    embeddings: list[list[float]] | list[str]
    if body.encoding_format == "base64":
        little_endian = out.astype("<f4")
        embeddings = [base64.b64encode(row.tobytes()).decode() for row in little_endian]
    else:
        # six decimals in float64: rounding float32 then widening would print 0.17157100141...
        embeddings = np.round(out.astype(np.float64), 6).tolist()
    return EmbedResponse(
        model=run.bundle.manifest.name,
        dim=out.shape[1],
        normalized=body.normalize,
        encoding_format=body.encoding_format,
        embeddings=embeddings,
        truncated=embedded.truncated,
    )


@router.post("/classify", responses=errors(408, 413, 415, 422, 429, 503))
async def classify(body: ClassifyRequest, run: InferenceDep) -> ClassifyResponse:
    """Top-k classes by nearest class vector, with the margin, an `unknown` flag and why."""
    settings, embedder, classes = run.settings, run.embedder, run.classes
    check_input_count(len(body.inputs), settings)
    if body.k > settings.max_k:
        raise ValidationFailedError(
            f"k={body.k} is above the limit of {settings.max_k}", details={"max_k": settings.max_k}
        )
    prepared = embedder.prepare(body.inputs, truncate=body.truncate)
    encoded = await embedder.encode(prepared.arrays)
    threshold = body.threshold if body.threshold is not None else settings.unknown_threshold
    predictions = classes.classify(
        encoded.vectors,
        body.k,
        threshold,
        features=encoded.features,
        input_scores=encoded.input_scores,
    )
    for p in predictions:
        metrics.BEST_SCORE.observe(p.score)
        metrics.MARGIN.observe(p.margin)
        metrics.CLASSIFIED.labels(label=p.label, unknown=str(p.unknown).lower()).inc()
    return ClassifyResponse(
        model=run.bundle.manifest.name,
        rule=classes.rule.name,
        results=[Classification.model_validate(p, from_attributes=True) for p in predictions],
        truncated=prepared.truncated,
    )
