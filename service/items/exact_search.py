"""Exact top-k kernels over parts of a view (view.py): the delta, the seqs a filter allows,
and the over-fetch of a wide filter on an approximate main index (live_index.py chooses).

Every function takes raw or unit queries (Q, D) and gives scores (Q, k) float32 (cosine,
-inf where there is no hit) and seqs (Q, k) int64 (-1 where there is none), unless it says
it gives at most k unsorted hits.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from corel.class_rule import l2_normalise
from service.items.view import View, contains, no_seqs

__all__ = ["OVER_FETCH", "exact_among", "exact_delta", "over_fetch"]

OVER_FETCH = 2  # wider filters on approximate indexes: fetch k / share times this, filter


def exact_among(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over the allowed seqs, gathered from main and the delta."""
    allowed = np.unique(np.asarray(allowed, np.int64))
    # a seq committed to the store a moment ago may not be in this view yet: left out
    in_main = allowed[contains(view.main_ids, allowed) & ~contains(view.removed, allowed)]
    keep = np.isin(view.delta_seqs, allowed)
    seqs = np.concatenate([in_main, view.delta_seqs[keep]])
    vectors = np.vstack(
        [
            view.main.vectors(in_main).reshape(-1, view.delta_vectors.shape[1]),
            view.delta_vectors[keep],
        ]
    )
    scores, found = _top(queries, seqs, vectors, k)
    return _pad_to(scores, found, k)


def over_fetch(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Main's top k among `allowed` from an unfiltered search of k / share * OVER_FETCH hits;
    the queries that find fewer than k allowed hits that way are answered exactly."""
    allowed = np.unique(np.asarray(allowed, np.int64))
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
        keep = np.isin(seqs, allowed)
        seqs, vectors = seqs[keep], vectors[keep]
    return _top(queries, seqs, vectors, k)


def _top(
    queries: np.ndarray, seqs: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:  # (Q, <=k), unsorted
    if len(seqs) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores = l2_normalise(queries) @ vectors.T  # (Q, n)
    top = min(k, len(seqs))
    part = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    return np.take_along_axis(scores, part, 1), seqs[part]


def _pad_to(scores: np.ndarray, seqs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, seqs = np.take_along_axis(scores, order, 1), np.take_along_axis(seqs, order, 1)
    missing = k - scores.shape[1]
    if missing > 0:
        scores = np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf)
        seqs = np.pad(seqs, ((0, 0), (0, missing)), constant_values=-1)
    return scores.astype(np.float32), seqs.astype(np.int64)
