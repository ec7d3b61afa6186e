"""Neighbour search over the stored items: queries, filters, ranking.

A filter (label, metadata fields) is first resolved to the seqs it matches in SQLite; the
live index searches among those (exactly, when they are few: live_index.py). Scores are
cosine similarities; a stored item is never its own neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.errors import ConflictError, NotFoundError, ValidationFailedError
from service.items.live_index import LiveIndex
from service.items.store import ItemStore, MetadataValue, StoredItem

__all__ = [
    "Neighbour",
    "SearchOptions",
    "check_vector",
    "find_neighbours",
    "resolve_queries",
    "vectors_ok",
]


@dataclass(frozen=True)
class SearchOptions:
    k: int
    offset: int = 0
    min_score: float | None = None
    label: str | None = None
    metadata: dict[str, MetadataValue] | None = None


@dataclass(frozen=True)
class Neighbour:
    item: StoredItem  # a store may leave its `source` out (None): neighbours never show it
    score: float  # cosine similarity


# A raw vector is stored as float32 and L2-normalised in float32 (FAISS, the class rule).
# Its squares must neither overflow (above ~1.8e19) nor all vanish (below ~1e-19), or the
# norm is inf or 0 and the direction is lost; these bounds keep both well clear, and the
# OpenAPI schema states them (service/api/openapi.py).
VECTOR_MAX_ABS = 1e15  # every component's magnitude at most this
VECTOR_MIN_PEAK = 1e-15  # and at least one component's at least this


def check_vector(vector: Sequence[float] | np.ndarray, dim: int, where: str) -> np.ndarray:
    """A raw vector as float32 (dim,), or 422: wrong length, NaN/inf, out of bounds, or with
    no component large enough to give it a direction."""
    v = np.asarray(vector, dtype=np.float64)
    if v.shape != (dim,):
        raise ValidationFailedError(
            f"{where}: vector has shape {list(v.shape)}, the model's embeddings have {dim}"
        )
    peak = float(np.abs(v).max())
    if not np.isfinite(v).all() or peak > VECTOR_MAX_ABS or peak < VECTOR_MIN_PEAK:
        raise ValidationFailedError(
            f"{where}: vector components must be finite, at most {VECTOR_MAX_ABS:g} in "
            f"magnitude, and at least one at least {VECTOR_MIN_PEAK:g} (not all zero)"
        )
    return v.astype(np.float32)


def vectors_ok(vectors: np.ndarray) -> bool:
    """`check_vector`'s rule over a (n, D) batch at once: the fast path of an insert."""
    peaks = np.abs(vectors).max(axis=1)
    return bool(
        np.isfinite(vectors).all()
        and (peaks <= VECTOR_MAX_ABS).all()
        and (peaks >= VECTOR_MIN_PEAK).all()
    )


def resolve_queries(
    store: ItemStore, model_id: str, dim: int, queries: list[np.ndarray | str]
) -> tuple[np.ndarray, list[int | None]]:
    """(query vectors (Q, D), own seqs): a str is a stored item's id, anything else a vector."""
    vectors: list[np.ndarray] = []
    own: list[int | None] = []
    for n, query in enumerate(queries):
        if not isinstance(query, str):
            vectors.append(check_vector(query, dim, f"queries[{n}]"))
            own.append(None)
            continue
        item = store.get(query)
        if item is None:
            raise NotFoundError(f"queries[{n}]: no item with id {query!r}")
        if item.model_id != model_id:  # its vector lives in another model's space
            raise ConflictError(
                f"queries[{n}]: item {query!r} was embedded by another model; "
                "re-embed it first (POST /items/reembed)"
            )
        vectors.append(item.embedding)
        own.append(item.seq)
    return np.stack(vectors), own


def find_neighbours(
    store: ItemStore,
    index: LiveIndex,
    model_id: str,
    vectors: np.ndarray,  # (Q, D) raw query vectors
    own: list[int | None],  # per query, the seq of the stored item it is (left out), or None
    options: SearchOptions,
) -> list[list[Neighbour]]:
    fetch = options.k + options.offset + 1  # +1: a stored query finds itself first
    allowed = None
    if options.label is not None or options.metadata:
        allowed = store.seqs(model_id, label=options.label, metadata=options.metadata)
    scores, seqs = index.search(vectors, fetch, allowed)
    items = store.get_by_seqs(np.unique(seqs[seqs >= 0]).tolist())
    return [_rank(scores[q], seqs[q], own[q], items, options) for q in range(len(vectors))]


def _rank(
    scores: np.ndarray,
    seqs: np.ndarray,
    own: int | None,
    items: dict[int, StoredItem],
    options: SearchOptions,
) -> list[Neighbour]:
    hits = [
        Neighbour(items[int(s)], float(score))
        for score, s in zip(scores, seqs, strict=True)
        if s >= 0 and s != own and int(s) in items  # not in items: deleted meanwhile
    ]
    hits = hits[options.offset : options.offset + options.k]
    if options.min_score is not None:
        hits = [h for h in hits if h.score >= options.min_score]
    return hits
