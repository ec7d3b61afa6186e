"""Clustering quality: score a labelled batch, cluster a batch, report on the stored items.

The metrics are the training package's (service.clustering): K-Means and a Gaussian
mixture scored by accuracy after Hungarian matching, ARI and V-measure, and the cosine
silhouette. Batches are clustered L2-normalised by default (cosine geometry, what
Cosine-COREL optimises); `normalise: false` clusters the raw embeddings. The work runs in
a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.deps import BundleDep, ClassIndexDep, EmbedderDep, SettingsDep, check_input_count
from service.api.json_route import ORJSONRoute
from service.api.routes.items import ItemsDep
from service.api.schemas import EXAMPLE_INPUT, Input, exactly_one
from service.class_rule import l2_normalise
from service.clustering import choose_k, class_report, evaluate_latent_space, kmeans, silhouette
from service.errors import ValidationFailedError
from service.item_search import check_vector

__all__ = ["router"]

router = APIRouter(prefix="/clustering", tags=["clustering"],
                   route_class=ORJSONRoute)
MAX_CLUSTERS = 50
MAX_K_CANDIDATES = 20  # K values tried in one /cluster call, each a full K-Means
REPORT_LIMIT = 50_000


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Input] | None = Field(None, description="Inputs to embed (or give vectors)")
    vectors: list[list[float]] | None = Field(None, description="Raw embeddings of this model")
    normalise: bool = Field(True, description="Cluster L2-normalised embeddings (cosine)")
    seed: int = Field(0, description="Seed for K-Means, the mixture and silhouette sampling")

    @model_validator(mode="after")
    def _one_source(self) -> Batch:
        exactly_one(inputs=self.inputs, vectors=self.vectors)
        return self

    @property
    def size(self) -> int:
        return len(self.inputs or self.vectors or [])


class ScoreRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"inputs": [EXAMPLE_INPUT] * 3, "labels": [0, 1, 1]}]}
    )

    labels: list[str | int] = Field(description="The true class of each input, in order")
    gmm: bool = Field(True, description="Also fit a Gaussian mixture (slower)")


class ClusterRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"inputs": [EXAMPLE_INPUT] * 3, "k_min": 2, "k_max": 2}]}
    )

    k: int | None = Field(None, ge=2, le=MAX_CLUSTERS, description="Clusters; absent: chosen")
    k_min: int = Field(2, ge=2, le=MAX_CLUSTERS)
    k_max: int = Field(10, ge=2, le=MAX_CLUSTERS)


class Agreement(BaseModel):
    accuracy: float = Field(description="Accuracy after Hungarian matching of clusters to labels")
    ari: float
    v_measure: float


class ScoreResponse(BaseModel):
    n: int
    k: int = Field(description="Number of classes in the labels, used as K")
    geometry: str
    kmeans: Agreement
    gmm: Agreement | None = None
    silhouette_kmeans: float = Field(description="Cosine silhouette of the K-Means clusters")
    silhouette_labels: float = Field(description="Cosine silhouette of the true classes")


class ClusterResponse(BaseModel):
    k: int
    geometry: str
    assignments: list[int]
    sizes: list[int]
    silhouette: float = Field(description="Cosine silhouette of the assignments")
    silhouette_by_k: dict[int, float] | None = Field(None, description="When K was chosen")


async def _embeddings(batch: Batch, embedder: Any, settings: Any, dim: int) -> np.ndarray:
    check_input_count(batch.size, settings)
    if batch.inputs is not None:
        embeddings: np.ndarray = await embedder.embed_inputs(batch.inputs)
        return embeddings
    vectors = batch.vectors or []
    return np.stack([check_vector(v, dim, f"vectors[{n}]") for n, v in enumerate(vectors)])


@router.post("/score", response_model=ScoreResponse, response_model_exclude_none=True)
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
    x = await _embeddings(body, embedder, settings, bundle.manifest.embedding_dim)
    result = await asyncio.to_thread(
        evaluate_latent_space,
        x,
        labels,
        normalise=body.normalise,
        seed=body.seed,
        with_gmm=body.gmm,
    )
    return ScoreResponse(**result)


@router.post("/cluster", response_model=ClusterResponse, response_model_exclude_none=True)
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
    raw = await _embeddings(body, embedder, settings, bundle.manifest.embedding_dim)
    x = l2_normalise(raw) if body.normalise else raw
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
        geometry="l2-normalised" if body.normalise else "raw",
        assignments=assignments.tolist(),
        sizes=np.bincount(assignments, minlength=k).tolist(),
        silhouette=sil,
        silhouette_by_k=scores,
    )


class Misplaced(BaseModel):
    id: str
    closest_class: str = Field(description="The class whose vector scores highest")
    closest_score: float
    own_score: float = Field(description="Score against its own class vector")


class ClassQuality(BaseModel):
    label: str
    n: int
    cohesion: float = Field(description="Mean cosine of its items to their centroid")
    nearest_class: str | None = Field(description="By cosine between class centroids")
    nearest_class_similarity: float | None
    has_class_vector: bool = Field(description="False: a label the class index does not know")
    misplaced: int | None = Field(None, description="Items nearer another class vector")
    misplaced_examples: list[Misplaced] = Field(default_factory=list)


class Report(BaseModel):
    n_items: int
    n_labelled: int = Field(description="Items with a label: only these are reported on")
    truncated: bool = Field(description="More items are stored than `limit`")
    rule: str = Field(description="Class rule the misplaced items are judged by")
    misplaced: int
    classes: list[ClassQuality]


@router.get("/report", response_model=Report)
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
    result: dict[str, Any] = {"classes": []}
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
    for entry in result["classes"]:
        for example in entry.get("misplaced_examples", []):
            example["id"] = rows.ids[labelled[example.pop("index")]]
    return Report(
        n_items=min(len(rows.ids), limit),
        n_labelled=len(labelled),
        truncated=len(rows.ids) > limit,
        rule=rule,
        misplaced=sum(entry.get("misplaced", 0) for entry in result["classes"]),
        classes=result["classes"],
    )
