"""Clustering quality: score a labelled batch, cluster a batch, report on the stored items.

The metrics are the training package's (corel.clustering): K-Means and a Gaussian
mixture scored by accuracy after Hungarian matching, ARI and V-measure, and the cosine
silhouette. Batches are clustered L2-normalised by default (cosine geometry, what
Cosine-COREL optimises); `normalize: false` clusters the raw embeddings. The work runs in
a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

import numpy as np
from fastapi import Query

from corel import clustering as corel_clustering
from corel.class_rule import l2_normalise
from corel.clustering import choose_k, class_report, evaluate_latent_space, kmeans, silhouette
from service.api.deps import (
    BundleDep,
    ClassIndexDep,
    EmbedderDep,
    ItemsDep,
    SettingsDep,
    check_input_count,
)
from service.api.json_route import json_router
from service.api.schemas.clustering import (
    MAX_K_CANDIDATES,
    Batch,
    ClassQuality,
    ClusterRequest,
    ClusterResponse,
    Misplaced,
    Report,
    ScoreRequest,
    ScoreResponse,
)
from service.api.schemas.errors import errors
from service.errors import ValidationFailedError
from service.inference.embedder import Embedded, RequestEmbedder
from service.items.types import check_vector
from service.settings import Settings

router = json_router("clustering", prefix="/clustering")
REPORT_LIMIT = 50_000


async def _embeddings(
    batch: Batch, embedder: RequestEmbedder, settings: Settings, dim: int
) -> Embedded:
    check_input_count(batch.size, settings)
    if batch.inputs is not None:
        return await embedder.embed_inputs(batch.inputs, truncate=batch.truncate)
    vectors = batch.vectors or []
    checked = [check_vector(v, dim, f"vectors[{n}]") for n, v in enumerate(vectors)]
    return Embedded(np.stack(checked), [])


# A batch is embedded and clustered: the errors of a body and of the model
BATCH_ERRORS = errors(408, 413, 415, 422, 429, 503)


@router.post("/score", response_model_exclude_none=True, responses=BATCH_ERRORS)
async def score(
    body: ScoreRequest, embedder: EmbedderDep, settings: SettingsDep, bundle: BundleDep
) -> ScoreResponse:
    """How well the batch clusters into its labelled classes."""
    if len(body.labels) != body.size:
        raise ValidationFailedError(f"{len(body.labels)} labels for {body.size} inputs")
    labels = np.array([str(label) for label in body.labels])
    n_classes = len(np.unique(labels))
    if n_classes < 2 or body.size <= n_classes:
        raise ValidationFailedError(
            f"need at least 2 classes and more inputs than classes ({body.size} for {n_classes})"
        )
    embedded = await _embeddings(body, embedder, settings, bundle.manifest.embedding_dim)
    result = await asyncio.to_thread(
        evaluate_latent_space,
        embedded.vectors,
        labels,
        normalise=body.normalize,
        seed=body.seed,
        with_gmm=body.gmm,
    )
    response = ScoreResponse.model_validate(result, from_attributes=True)
    response.truncated = embedded.truncated
    return response


@router.post("/cluster", response_model_exclude_none=True, responses=BATCH_ERRORS)
async def cluster(
    body: ClusterRequest, embedder: EmbedderDep, settings: SettingsDep, bundle: BundleDep
) -> ClusterResponse:
    """K-Means on the batch, with K given or chosen by cosine silhouette in [k_min, k_max]."""
    k_max = body.k if body.k is not None else body.k_max
    k_min = body.k if body.k is not None else body.k_min
    if k_min > k_max or k_max - k_min + 1 > MAX_K_CANDIDATES:
        raise ValidationFailedError(
            f"k_min..k_max must be a range of 1 to {MAX_K_CANDIDATES} values"
        )
    if body.size <= k_max:
        raise ValidationFailedError(f"{body.size} inputs cannot form {k_max} clusters")
    embedded = await _embeddings(body, embedder, settings, bundle.manifest.embedding_dim)
    x = l2_normalise(embedded.vectors) if body.normalize else embedded.vectors
    if body.k is not None:
        assignments = await asyncio.to_thread(kmeans, x, body.k, body.seed)
        k, scores = body.k, None
        sil = await asyncio.to_thread(silhouette, x, assignments, body.seed)
    else:
        k, assignments, scores = await asyncio.to_thread(
            choose_k, x, range(k_min, k_max + 1), body.seed
        )
        sil = scores[k]
    return ClusterResponse(
        k=k,
        geometry="l2-normalised" if body.normalize else "raw",
        assignments=assignments.tolist(),
        sizes=np.bincount(assignments, minlength=k).tolist(),
        silhouette=sil,
        silhouette_by_k=scores,
        truncated=embedded.truncated,
    )


@router.get("/report", response_model=Report, responses=errors(422, 503))
async def report(
    items: ItemsDep,
    class_index: ClassIndexDep,
    limit: Annotated[int, Query(ge=1, le=REPORT_LIMIT)] = REPORT_LIMIT,
    max_examples: Annotated[int, Query(ge=0, le=100)] = 10,
) -> Report:
    """The stored items of the current model, class by class: cohesion (mean cosine to the
    class centroid), the nearest other class, and the items that the class rule puts
    closer to another class vector than to their own."""
    rows = await items.corpus(limit + 1)
    labelled = [n for n, label in enumerate(rows.labels[:limit]) if label is not None]
    classes, rule = class_index.classes, class_index.rule  # the current set, imprints included
    qualities: list[ClassQuality] = []
    if labelled:
        result = await asyncio.to_thread(
            class_report,
            rows.vectors[labelled],
            [str(rows.labels[n]) for n in labelled],
            classes.vectors,
            classes.names,
            rule,
            classes.bias,
            max_examples,
        )
        qualities = [_quality(entry, [rows.ids[n] for n in labelled]) for entry in result.classes]
    return Report(
        n_items=min(len(rows.ids), limit),
        n_labelled=len(labelled),
        truncated=len(rows.ids) > limit,
        rule=rule.name,
        misplaced=sum(q.misplaced or 0 for q in qualities),
        classes=qualities,
    )


def _quality(entry: corel_clustering.ClassQuality, ids: list[str]) -> ClassQuality:
    """The report's entry for one class, with item ids in place of positions."""
    examples = [
        Misplaced(
            id=ids[m.index],
            closest_class=m.closest_class,
            closest_score=m.closest_score,
            own_score=m.own_score,
        )
        for m in entry.misplaced_examples
    ]
    return ClassQuality.model_validate({**asdict(entry), "misplaced_examples": examples})
