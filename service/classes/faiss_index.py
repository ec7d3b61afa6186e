"""The FAISS flat indexes the class index searches: the class vectors under the class rule
(on the GPU when FAISS has one), and the open set's bank of training items' features."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from corel.class_rule import ClassRule
from service.classes.class_set import ClassSet

__all__ = ["bank_index", "build_faiss_index"]


def build_faiss_index(classes: ClassSet, rule: ClassRule) -> faiss.Index:
    """The rule's `index_vectors` of the classes: searched with its `query_vectors`, what
    this index returns is `rule.scores` (corel/class_rule.py)."""
    index = _flat(rule.index_vectors(classes.vectors, classes.bias), rule.metric == "l2")
    if faiss.get_num_gpus() > 0 and hasattr(faiss, "StandardGpuResources"):
        index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    return index


def bank_index(unit_bank: np.ndarray) -> faiss.Index:
    """Inner products with the open set's normalised bank (M, F), on the CPU: numpy's BLAS,
    with its threads spinning on busy cores, took 65 ms for one query here against 4 ms."""
    return _flat(unit_bank, False)


def _flat(vectors: np.ndarray, l2: bool) -> faiss.Index:
    dim = vectors.shape[1]
    index: faiss.Index = faiss.IndexFlatL2(dim) if l2 else faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, np.float32))
    return index


_GPU_RESOURCES: list[Any] = []


def _gpu_resources() -> Any:
    # One set of GPU scratch memory for the process, kept alive as long as any index using it
    if not _GPU_RESOURCES:
        _GPU_RESOURCES.append(faiss.StandardGpuResources())
    return _GPU_RESOURCES[0]
