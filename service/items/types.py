"""The items contract: what every item store takes and gives, and the rules they share.

Two stores implement `ItemBackend` (backend.py): the embedded one (embedded.py: SQLite in
sqlite_store.py plus the FAISS live index) and the Milvus one (milvus.py). Both, and the
API, import the item types from here and nothing from each other, so a change to one store
cannot reach into the other. What both must do alike lives here once as well: the checks of
a raw vector, the resolution of a query (a vector or a stored item's id) and the ranking of
hits (the stored query left out, then `offset`, `k` and `min_score`), and re-embedding a
batch from stored inputs.

Kept apart from backend.py (the Protocol) so that this module holds data and plain
functions only, and the Protocol reads as the list of operations it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Required, TypedDict

import numpy as np

from service.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationFailedError,
)

__all__ = [
    "METADATA_NUMBER_RANGE",
    "VECTOR_MAX_ABS",
    "VECTOR_MIN_PEAK",
    "EmbedSources",
    "IndexDevice",
    "IndexKind",
    "IndexSetting",
    "IndexStats",
    "IndexStatus",
    "IndexedItem",
    "ItemFilter",
    "JobStatus",
    "MetadataValue",
    "ModelCounts",
    "Neighbour",
    "NewItem",
    "PageQuery",
    "ReembedFailure",
    "ReembedResult",
    "SearchOptions",
    "StoredItem",
    "VectorRows",
    "check_new_items",
    "check_vector",
    "embed_each",
    "metadata_numbers_in_range",
    "no_vector_rows",
    "rank",
    "resolve_queries",
    "vectors_ok",
]

MetadataValue = str | int | float | bool | None
# The numbers metadata and its filters may hold: within 2**53, every integer is one a
# float64 holds exactly, so that an integer means the same to the body's JSON parser (which
# reads one beyond 64 bits as a float), to JavaScript, to SQLite's JSON and Milvus's JSON,
# and to JSON Schema's bounds, which cannot tell 2**63 from 2**63 - 1 as floats
METADATA_NUMBER_RANGE = (-(2**53), 2**53)
IndexKind = Literal["flat", "hnsw", "ivf"]  # of an index that serves
IndexSetting = Literal["auto", "flat", "hnsw", "ivf"]  # COREL_INDEX_KIND
# Where the vectors are searched: the embedded store's FAISS index on the CPU or the GPU,
# or, with the milvus store, inside Milvus (its devices are Milvus's to report)
IndexDevice = Literal["cpu", "gpu", "milvus"]
# Embeds a batch of stored inputs (as `source` holds them): (n, D) raw embeddings
EmbedSources = Callable[[list[dict[str, Any]]], Awaitable[np.ndarray]]


# -- items -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewItem:
    id: str
    embedding: np.ndarray  # (D,) float32, raw
    label: str | None = None
    metadata: dict[str, Any] | None = None
    source: dict[str, Any] | None = None  # the Input, for re-embedding


@dataclass(frozen=True)
class StoredItem:
    seq: int  # the store's key: increasing, never reused; a new one when re-embedded
    id: str
    model_id: str
    embedding: np.ndarray  # (D,) float32, raw
    label: str | None
    metadata: dict[str, Any]
    source: dict[str, Any] | None
    created: str
    updated: str


@dataclass(frozen=True)
class IndexedItem:
    """What the embedded store's filter index (filter_index.py) keeps of one stored item."""

    seq: int
    model_id: str
    label: str | None
    metadata: dict[str, Any]
    has_source: bool


@dataclass(frozen=True)
class VectorRows:
    seqs: np.ndarray  # (n,) int64
    ids: list[str]
    labels: list[str | None]
    vectors: np.ndarray  # (n, D) float32, raw; (0, 0) when n == 0


def no_vector_rows() -> VectorRows:
    return VectorRows(np.zeros(0, np.int64), [], [], np.zeros((0, 0), np.float32))


class ItemFilter(TypedDict, total=False):
    """What a listing or count keeps: items with this label and these metadata fields
    (equal, JSON types kept apart: true is not 1), each when given and not None."""

    label: str | None
    metadata: dict[str, MetadataValue] | None


class PageQuery(ItemFilter):
    """A page of a listing in seq (insertion) order: at most `limit` items after seq
    `after_seq` (0 when left out), the first `offset` (0) of them skipped."""

    limit: Required[int]
    after_seq: NotRequired[int]
    offset: NotRequired[int]


@dataclass(frozen=True)
class ModelCounts:
    current: int  # items embedded by the model asked about
    other: int  # items embedded by another model
    other_reembeddable: int  # ... of those, with a stored input


# -- the index's state, as GET /items shows it -----------------------------------------


@dataclass(frozen=True)
class JobStatus:
    job: Literal["merge", "rebuild"]
    kind: IndexKind  # of the index being made
    done: int
    total: int
    started: float  # time.time()


@dataclass(frozen=True)
class IndexStatus:
    """The embedded store's live index (live_index.py); the milvus store has none."""

    kind: IndexKind  # of the main index serving now
    wanted: IndexKind  # what the setting asks for at this size
    size: int  # live vectors searchable
    main: int
    delta: int
    removed: int
    job: JobStatus | None
    last_snapshot: float | None  # time.time() of the last snapshot written, None: never
    last_error: str | None  # of the last background job, None when it succeeded


@dataclass(frozen=True)
class IndexStats:
    model_id: str  # sha256 of the encoder whose vectors are searchable
    ready: bool
    index_kind: IndexKind  # of the index serving now
    index_setting: IndexSetting
    index_device: IndexDevice
    index_size: int
    index: IndexStatus | None  # None until loaded, and always with the milvus store
    items_current_model: int
    items_other_models: int  # not searchable until re-embedded
    items_other_models_reembeddable: int
    load_error: str | None


# -- re-embedding ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReembedFailure:
    id: str
    error: str


@dataclass(frozen=True)
class ReembedResult:
    reembedded: int
    failed: list[ReembedFailure]
    items_other_models: int  # still of another model (no stored input)


# A stored input the current model cannot take (other shape, too large): skip that item.
_INPUT_ERRORS = (ValidationFailedError, PayloadTooLargeError, ValueError)


async def embed_each(
    todo: list[StoredItem], embed_sources: EmbedSources
) -> tuple[list[StoredItem], np.ndarray, list[ReembedFailure]]:
    """Re-embed items from their stored inputs: (those that worked, their vectors, failures)."""
    try:  # the whole batch at once; one by one only to find which inputs fail
        return todo, await embed_sources([t.source or {} for t in todo]), []
    except _INPUT_ERRORS:
        pass
    ok, vectors, failed = [], [], []
    for item in todo:
        try:
            vectors.append((await embed_sources([item.source or {}]))[0])
            ok.append(item)
        except _INPUT_ERRORS as exc:
            failed.append(ReembedFailure(item.id, str(exc)))
    return ok, np.array(vectors, np.float32).reshape(len(ok), -1), failed


# -- vectors ---------------------------------------------------------------------------

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


def metadata_numbers_in_range(value: Any) -> Any:
    """A pydantic validator for metadata, or a filter on it (any JSON): ValueError for a
    number anywhere in it outside METADATA_NUMBER_RANGE."""
    low, high = METADATA_NUMBER_RANGE
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, int | float) and not isinstance(v, bool) and not low <= v <= high:
            raise ValueError(
                f"the number {v} is beyond 2**53 in magnitude, where float64 and JavaScript "
                "lose integers: send it as a string"
            )
    return value


def check_new_items(items: list[NewItem], dim: int) -> None:
    """422 unless every item's vector passes `check_vector` (the batch checked at once)."""
    vectors = [np.asarray(item.embedding, np.float32) for item in items]
    if any(v.shape != (dim,) for v in vectors) or not vectors_ok(np.stack(vectors)):
        for n, item in enumerate(items):  # the slow path, for the message
            check_vector(item.embedding, dim, f"items[{n}]")


# -- neighbours ------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchOptions:
    k: int
    offset: int = 0
    min_score: float | None = None
    label: str | None = None
    metadata: dict[str, MetadataValue] | None = None

    @property
    def fetch(self) -> int:
        """Hits to ask the index for: +1, as a stored query finds itself first."""
        return self.k + self.offset + 1

    @property
    def filtered(self) -> bool:
        return self.label is not None or bool(self.metadata)


@dataclass(frozen=True)
class Neighbour:
    item: StoredItem  # a store may leave its `source` out (None): neighbours never show it
    score: float  # cosine similarity


def resolve_queries(
    queries: list[np.ndarray | str],
    *,
    dim: int,
    model_id: str,
    get: Callable[[str], StoredItem | None],
) -> tuple[np.ndarray, list[int | None]]:
    """(query vectors (Q, D), own seqs): a str is a stored item's id (`get` reads it; 404
    when there is none, 409 when another model embedded it), anything else a raw vector."""
    vectors: list[np.ndarray] = []
    own: list[int | None] = []
    for n, query in enumerate(queries):
        if not isinstance(query, str):
            vectors.append(check_vector(query, dim, f"queries[{n}]"))
            own.append(None)
            continue
        item = get(query)
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


def rank(hits: Iterable[Neighbour], own: int | None, options: SearchOptions) -> list[Neighbour]:
    """One query's answer from its hits, best first: without the stored query itself
    (`own`), `offset` skipped, `k` kept, then those below `min_score` dropped."""
    ranked = [h for h in hits if h.item.seq != own][options.offset : options.offset + options.k]
    if options.min_score is not None:
        ranked = [h for h in ranked if h.score >= options.min_score]
    return ranked
