"""Bodies of the /clustering routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from service.api.schemas.common import EXAMPLE_INPUT, Label, Truncate, Truncated, refuse_renamed
from service.inference.inputs import Input, Int, exactly_one, one_given, whole

MAX_CLUSTERS = 50
MAX_K_CANDIDATES = 20  # K values tried in one /cluster call, each a full K-Means


ONE_SOURCE = one_given("inputs", "vectors")


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"oneOf": ONE_SOURCE})

    inputs: list[Input] | None = Field(None, description="Inputs to embed (or give vectors)")
    vectors: list[list[float]] | None = Field(None, description="Raw embeddings of this model")
    normalize: bool = Field(True, description="Cluster L2-normalised embeddings (cosine)")
    seed: Int = Field(
        0, ge=0, le=2**32 - 1, description="Seed for K-Means, the mixture and silhouette sampling"
    )
    truncate: Truncate = True

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: Any) -> Any:
        return refuse_renamed(data, old="normalise", new="normalize")

    @model_validator(mode="after")
    def _one_source(self) -> Batch:
        exactly_one(inputs=self.inputs, vectors=self.vectors)
        return self

    @property
    def size(self) -> int:
        return len(self.inputs or self.vectors or [])


class ScoreRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"inputs": [EXAMPLE_INPUT] * 3, "labels": [0, 1, 1]}],
            "oneOf": ONE_SOURCE,
        }
    )

    labels: list[Label | Int] = Field(
        description="The true class of each input, in order: one per input, at least 2 "
        "classes, and more inputs than classes"
    )
    gmm: bool = Field(True, description="Also fit a Gaussian mixture (slower)")


class ClusterRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"inputs": [EXAMPLE_INPUT] * 3, "k_min": 2, "k_max": 2}],
            "oneOf": ONE_SOURCE,
        }
    )

    # Int's parts spelled out, bounds first: on the optional field, or after the validator,
    # pydantic would write them into the schema as `ge`/`le`, which JSON Schema does not know
    k: Annotated[int, Field(ge=2, le=MAX_CLUSTERS), BeforeValidator(whole)] | None = Field(
        None,
        description="Clusters, fewer than the inputs; absent: chosen from k_min..k_max "
        f"(k_min <= k_max, at most {MAX_K_CANDIDATES} values, k_max below the inputs)",
    )
    k_min: Int = Field(2, ge=2, le=MAX_CLUSTERS)
    k_max: Int = Field(10, ge=2, le=MAX_CLUSTERS)


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
    truncated: Truncated = []


class ClusterResponse(BaseModel):
    k: int
    geometry: str
    assignments: list[int]
    sizes: list[int]
    silhouette: float = Field(description="Cosine silhouette of the assignments")
    silhouette_by_k: dict[int, float] | None = Field(None, description="When K was chosen")
    truncated: Truncated = []


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
