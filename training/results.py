"""What a run produces, as typed values, and the JSON each has always been in a bundle.

torch-free, like the evaluation that fills most of them: `corel-eval` needs no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from corel.clustering import LatentSpaceScores

__all__ = ["EpochRow", "Evaluation", "Headline"]


def _without_none(values: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class EpochRow:
    """One epoch of training: a line of the report's table and a point of its curves."""

    epoch: int
    train_loss: float
    train_accuracy: float  # by the class rule, on the batches as they were trained
    val_accuracy: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class Headline:
    """The few numbers that go into a manifest's `metrics` and a results table; all but
    the last on the L2-normalised embeddings."""

    accuracy: float
    kmeans_accuracy: float
    gmm_accuracy: float | None
    ari: float
    v_measure: float
    silhouette: float  # cosine, against the K-Means clusters (the paper's)
    silhouette_labels: float
    kmeans_accuracy_raw: float | None

    def to_json(self) -> dict[str, object]:
        return _without_none(asdict(self))


@dataclass(frozen=True)
class Evaluation:
    """A latent space scored on a labelled split: `metrics.json`."""

    n: int
    accuracy: float  # by the class rule
    l2_normalised: LatentSpaceScores  # the cosine geometry, the headline
    raw: LatentSpaceScores | None = None
    dataset: str | None = None
    split: str | None = None

    def headline(self) -> Headline:
        norm = self.l2_normalised
        return Headline(
            accuracy=self.accuracy,
            kmeans_accuracy=norm.kmeans.accuracy,
            gmm_accuracy=None if norm.gmm is None else norm.gmm.accuracy,
            ari=norm.kmeans.ari,
            v_measure=norm.kmeans.v_measure,
            silhouette=norm.silhouette_kmeans,
            silhouette_labels=norm.silhouette_labels,
            kmeans_accuracy_raw=None if self.raw is None else self.raw.kmeans.accuracy,
        )

    def to_json(self) -> dict[str, object]:
        return _without_none(asdict(self))
