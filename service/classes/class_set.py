"""The set of classes the service predicts: the bundle's, minus removed, plus imprinted ones.

A `ClassSet` is an immutable list of `ClassRecord`s; adding or removing a class makes a new
set. The current set is saved atomically in the data directory, keyed to the encoder's
sha256, and reloaded at start; another bundle starts from its own classes.
"""

from __future__ import annotations

import errno
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from corel.bundle import Bundle
from corel.files import atomic_write
from service.datadir.layout import DataDir
from service.errors import InsufficientStorageError, ServiceUnavailableError

__all__ = [
    "ClassRecord",
    "ClassSet",
    "class_set_from_state",
    "class_set_state",
    "load_class_set",
    "save_class_set",
    "saved_class_sets",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassRecord:
    name: str
    vector: np.ndarray  # (D,) float32, unnormalised as the rule wants it
    bias: float  # the `dot` rule's b; 0.0 under the other rules
    source: Literal["bundle", "imprinted"]
    examples: int | None  # how many examples an imprinted class was made from
    threshold: float | None  # below this best score a prediction is flagged unknown
    # the example inputs (as sent), so that a new model can imprint the class again
    inputs: tuple[dict[str, Any], ...] = ()
    # An imprinted class of a bundle with an open set: its prototype among the encoder's
    # centred features (F,), and by how much an input must prefer it to every known class
    # to be taken from them (corel/open_set.py, OpenSet.gate)
    prototype: np.ndarray | None = None
    bar: float | None = None


@dataclass(frozen=True)
class ClassSet:
    records: tuple[ClassRecord, ...]

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> ClassSet:
        thresholds = bundle.calibration.thresholds
        bias = (
            bundle.class_bias
            if bundle.class_bias is not None
            else np.zeros(len(bundle.manifest.labels), np.float32)
        )
        return cls(
            tuple(
                ClassRecord(name, vector, float(b), "bundle", None, thresholds.get(name))
                for name, vector, b in zip(
                    bundle.manifest.labels, bundle.class_vectors, bias, strict=True
                )
            )
        )

    def __len__(self) -> int:
        return len(self.records)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.records]

    @property
    def vectors(self) -> np.ndarray:  # (K, D)
        return np.stack([r.vector for r in self.records]).astype(np.float32)

    @property
    def bias(self) -> np.ndarray:  # (K,)
        return np.array([r.bias for r in self.records], np.float32)

    def with_record(self, record: ClassRecord) -> ClassSet:
        return replace(self, records=(*self.records, record))

    def without(self, name: str) -> ClassSet:
        return replace(self, records=tuple(r for r in self.records if r.name != name))


def class_set_state(classes: ClassSet, *, model_id: str) -> dict[str, Any]:
    """The set as JSON-ready data, keyed to its model (read back by `class_set_from_state`)."""
    return {
        "model_id": model_id,
        "classes": [
            {
                "name": r.name,
                "vector": r.vector.tolist(),
                "bias": r.bias,
                "source": r.source,
                "examples": r.examples,
                "threshold": r.threshold,
                "inputs": list(r.inputs),
                "prototype": None if r.prototype is None else r.prototype.tolist(),
                "bar": r.bar,
            }
            for r in classes.records
        ],
    }


def class_set_from_state(state: dict[str, Any]) -> ClassSet:
    if "classes" not in state:  # the format before records: parallel lists
        state["classes"] = _records_from_lists(state)
    return ClassSet(
        tuple(
            ClassRecord(
                c["name"],
                np.asarray(c["vector"], np.float32),
                float(c["bias"]),
                c["source"],
                c["examples"],
                c["threshold"],
                tuple(c.get("inputs", ())),
                None if c.get("prototype") is None else np.asarray(c["prototype"], np.float32),
                c.get("bar"),
            )
            for c in state["classes"]
        )
    )


def save_class_set(path: Path, classes: ClassSet, *, model_id: str) -> None:
    state = class_set_state(classes, model_id=model_id)
    try:
        atomic_write(path, json.dumps(state).encode())
    except OSError as exc:  # saved before served: the change is not made
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorageError(
                f"the disk of the data directory is full ({exc.strerror}): the class change "
                "was not made; free space and retry"
            ) from exc
        raise ServiceUnavailableError(f"the class set cannot be saved: {exc}") from exc


def load_class_set(path: Path, *, model_id: str) -> ClassSet | None:
    """The saved set, or None when there is none for this model."""
    if not path.is_file():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    if state.get("model_id") != model_id:
        return None
    log.info("loaded %d classes from %s", len(state.get("classes", state.get("names", []))), path)
    return class_set_from_state(state)


def _records_from_lists(state: dict[str, Any]) -> list[dict[str, Any]]:
    bias = state.get("bias") or [0.0] * len(state["names"])
    return [
        {"name": n, "vector": v, "bias": b, "source": s, "examples": e, "threshold": t}
        for n, v, b, s, e, t in zip(
            state["names"],
            state["vectors"],
            bias,
            state["sources"],
            state["examples"],
            state["thresholds"],
            strict=True,
        )
    ]


def saved_class_sets(data_dir: Path, *, except_model: str) -> list[tuple[Path, ClassSet]]:
    """The class sets saved in the data directory for other models, newest first."""
    found = []
    for path in sorted(DataDir(data_dir).class_sets(), key=lambda p: -p.stat().st_mtime):
        state = json.loads(path.read_text())
        model_id = state.get("model_id", "")
        if model_id != except_model and (classes := load_class_set(path, model_id=model_id)):
            found.append((path, classes))
    return found
