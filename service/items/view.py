"""What a search of the live item index reads: a `View`, never changed once published.

A view is a main FAISS index, the delta of vectors added since main was built (searched
exactly) and the seqs removed from the store that main still holds. live_index.py publishes
a new view per write, merge_worker.py a new main; exact_search.py searches parts of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.items.index import ItemIndex

__all__ = ["View", "contains", "no_seqs"]


@dataclass(frozen=True)
class View:
    main: ItemIndex
    main_ids: np.ndarray  # (m,) int64, sorted: the live seqs main holds (before `removed`)
    delta_seqs: np.ndarray  # (n,) int64, ascending
    delta_vectors: np.ndarray  # (n, D) float32, unit
    removed: np.ndarray  # (r,) int64, sorted: seqs in main that were deleted

    @classmethod
    def of(cls, main: ItemIndex) -> View:
        """Main alone: no delta, nothing removed."""
        dim = main.dim
        return cls(main, np.sort(main.ids()), no_seqs(), np.zeros((0, dim), np.float32), no_seqs())

    @property
    def size(self) -> int:
        return self.main.size - len(self.removed) + len(self.delta_seqs)


def no_seqs() -> np.ndarray:
    return np.zeros(0, np.int64)


def contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per value, whether it is in `sorted_values` (ascending): a binary search each."""
    if len(sorted_values) == 0:
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return np.asarray(sorted_values[at] == values)
