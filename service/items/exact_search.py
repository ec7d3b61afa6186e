"""Exact top-k kernels over parts of a view (view.py): the delta, the seqs a filter allows,
and the over-fetch of a wide filter on an approximate main index (live_index.py chooses).

Every function takes raw or unit queries (Q, D) and gives scores (Q, k) float32 (cosine,
-inf where there is no hit) and seqs (Q, k) int64 (-1 where there is none), unless it says
it gives at most k unsorted hits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import faiss
import numpy as np

from corel.class_rule import l2_normalise
from service.items.view import View, contains, no_seqs

__all__ = ["OVER_FETCH", "exact_among", "exact_delta", "over_fetch", "sorted_unique"]

# Gathering a row costs about three times scoring one in place (measured at 1M items: 5 ms
# for np.take of 100k rows, 14 ms to score all 1M): above a third of main, score it all
SCAN_ABOVE = 3
GATHER_CHUNK = 8_192  # rows gathered at a time when no copy is kept (_top_in_chunks)
OVER_FETCH = 2  # wider filters on approximate indexes: fetch k / share times this, filter

_faiss: Any = faiss  # its bundled type stubs lag its SWIG functions


def exact_among(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over the allowed seqs, gathered from main and the delta."""
    allowed = sorted_unique(allowed)
    # a seq committed to the store a moment ago may not be in this view yet: left out
    storage = view.main.storage()
    rows = view.main.rows(allowed) if storage is not None else None
    live = rows >= 0 if rows is not None else contains(view.main_ids, allowed)
    if len(view.removed):
        live &= ~contains(view.removed, allowed)
    keep = contains(allowed, view.delta_seqs)
    in_main = allowed[live]
    if storage is None or rows is None:
        vectors = view.main.vectors(in_main).reshape(-1, view.main.dim)
        m_scores, m_seqs = _top(queries, in_main, vectors, k)
    elif len(in_main) * SCAN_ABOVE > len(storage):
        m_scores, m_seqs = _top_of_rows(queries, storage, view.main.row_seqs(), rows[live], k)
    else:
        main_rows = rows[live]
        gathered = view.main.gathered(main_rows)
        if gathered is None:  # no copy of these rows kept yet: one is being made
            m_scores, m_seqs = _top_in_chunks(queries, storage, main_rows, in_main, k)
        else:
            m_scores, m_seqs = _top(queries, in_main, gathered, k)
    d_scores, d_seqs = _top(queries, view.delta_seqs[keep], view.delta_vectors[keep], k)
    return _pad_to(np.hstack([m_scores, d_scores]), np.hstack([m_seqs, d_seqs]), k)


def sorted_unique(seqs: np.ndarray) -> np.ndarray:
    """The seqs ascending without repeats; a filter's seqs already are (no sort then)."""
    seqs = np.asarray(seqs, np.int64)
    if len(seqs) < 2 or bool((seqs[1:] > seqs[:-1]).all()):
        return seqs
    return np.unique(seqs)


def over_fetch(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Main's top k among `allowed` from an unfiltered search of k / share * OVER_FETCH hits;
    the queries that find fewer than k allowed hits that way are answered exactly."""
    allowed = sorted_unique(allowed)
    share = len(allowed) / max(len(view.main_ids), 1)
    fetch = min(len(view.main_ids), int(np.ceil(OVER_FETCH * k / share)))
    scores, seqs = view.main.search(queries, fetch, excluded=view.removed)
    keep = contains(allowed, seqs) & (seqs >= 0)
    out_s = np.full((len(queries), k), -np.inf, np.float32)
    out_i = np.full((len(queries), k), -1, np.int64)
    short = []
    for row in range(len(queries)):
        hits = np.flatnonzero(keep[row])[:k]
        out_s[row, : len(hits)], out_i[row, : len(hits)] = scores[row, hits], seqs[row, hits]
        if len(hits) < k and fetch < len(view.main_ids):
            short.append(row)
    if short:
        main_only = replace(view, delta_seqs=no_seqs(), delta_vectors=view.delta_vectors[:0])
        out_s[short], out_i[short] = exact_among(queries[short], main_only, k, allowed)
    return out_s, out_i


def exact_delta(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """At most k unsorted hits of the delta (among `allowed` when given)."""
    seqs, vectors = view.delta_seqs, view.delta_vectors
    if allowed is not None:
        keep = contains(sorted_unique(allowed), seqs)
        seqs, vectors = seqs[keep], vectors[keep]
    return _top(queries, seqs, vectors, k)


def _top(
    queries: np.ndarray, seqs: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:  # (Q, <=k), sorted
    """The exact top k by FAISS's brute-force kernel: SIMD dot products into a heap, outside
    the GIL, where numpy's matrix product and argpartition write and scan a score per
    vector. Measured on one query with 2 busy cores: 1.2 ms against 4.4 ms at 50k vectors,
    4.2 ms against 11.3 ms at 150k (the delta after a bulk load), 3.7-3.9 ms against
    6.6-7.5 ms at 100k (a 10 % label's vectors at 1M items)."""
    if len(seqs) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    unit = np.ascontiguousarray(l2_normalise(queries), np.float32)
    rows = np.ascontiguousarray(vectors, np.float32)
    scores, at = _faiss.knn(unit, rows, min(k, len(seqs)), faiss.METRIC_INNER_PRODUCT)
    return np.asarray(scores, np.float32), seqs[at]


def _top_in_chunks(
    queries: np.ndarray, storage: np.ndarray, rows: np.ndarray, seqs: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:  # (Q, <=k), unsorted
    """`_top` over the given rows of main's storage, gathered GATHER_CHUNK at a time: an
    allocation that size comes back from malloc's heap already touched, where one of a
    whole wide filter (51 MB for 100k rows) is fresh memory each time (measured through
    the server at 1M items: 100-180 ms for the first query of each 10 % label)."""
    parts = [
        _top(
            queries,
            seqs[at : at + GATHER_CHUNK],
            np.take(storage, rows[at : at + GATHER_CHUNK], 0),
            k,
        )
        for at in range(0, len(rows), GATHER_CHUNK)
    ]
    if not parts:
        return _top(queries, seqs, storage[:0], k)
    return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])


def _top_of_rows(
    queries: np.ndarray, storage: np.ndarray, row_seqs: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:  # (Q, <=k), unsorted
    """`_top` over the given rows of main's storage, by scoring every row and masking the
    others: when most rows are wanted, cheaper than gathering them."""
    scores = l2_normalise(queries) @ storage.T  # (Q, N)
    wanted = np.zeros(len(storage), bool)
    wanted[rows] = True
    scores[:, ~wanted] = -np.inf
    top = min(k, len(rows))
    part = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    return np.take_along_axis(scores, part, 1), row_seqs[part]


def _pad_to(scores: np.ndarray, seqs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, seqs = np.take_along_axis(scores, order, 1), np.take_along_axis(seqs, order, 1)
    missing = k - scores.shape[1]
    if missing > 0:
        scores = np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf)
        seqs = np.pad(seqs, ((0, 0), (0, missing)), constant_values=-1)
    return scores.astype(np.float32), seqs.astype(np.int64)
