"""The model bundle: the contract between `training` (writes it) and `service` (reads it).

A bundle is a folder (docs/bundle-format.md):

    manifest.json        format_version, name, created, loss, architecture, input,
                         embedding_dim, class_rule, labels, files {name: sha256},
                         training, metrics, calibration
    encoder.onnx         input `input` [N, *input.shape] float32 -> output `embedding` [N, D]
                         (format 2 with `open_set`: a second output `features` [N, F];
                         format 3 text: `input` is token ids [N, L] int64, L dynamic)
    class_vectors.npy    float32 [K, D], unnormalised
    class_bias.npy       float32 [K], only for the `dot` rule
    open_set.npz         format 2, optional: training items' features and the input guard
                         (corel/open_set.py), described by the manifest's `open_set`
    tokenizer.json       format 3, text only: the tokenizer (corel/text.py) that `input`
                         names, with its `max_length`, `pad_id` and `truncation`

This module is torch-free so the service can import it. `load_bundle` checks every
promise the manifest makes and raises `BundleError` naming the first one broken.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from corel.class_rule import ClassRuleName
from corel.open_set import OpenSet
from corel.text import TextTokenizer, Truncation

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "Calibration",
    "InputKind",
    "InputSpec",
    "Manifest",
    "load_bundle",
    "sha256_file",
    "write_bundle",
]

# 2 added the optional `open_set` (a second ONNX output and open_set.npz); 3 added text
# input (`input.kind` "text" and its tokenizer file); 1 and 2 still load
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
ENCODER_FILE = "encoder.onnx"
OPEN_SET_FILE = "open_set.npz"
CLASS_VECTORS_FILE = "class_vectors.npy"
CLASS_BIAS_FILE = "class_bias.npy"
TOKENIZER_FILE = "tokenizer.json"  # what training names a text bundle's tokenizer


class BundleError(Exception):
    """A bundle is missing, malformed, or does not match its manifest."""


InputKind = Literal["image", "vector", "text"]


class InputSpec(BaseModel):
    """The manifest's `input`: how raw user values (pixels 0..255, feature units) become
    model input, the one place the rule `raw * scale + offset` is written; for text, the
    tokenizer file and the length rule (corel/text.py)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: InputKind
    shape: list[int] = Field(min_length=1)  # no batch axis: [1, 28, 28]; text: [max_length]
    dtype: Literal["float32", "int64"] = "float32"  # int64: token ids
    scale: float = 1.0  # model input = raw * scale + offset
    offset: float = 0.0
    # Raw values outside [low, high] are refused; absent: 0..255 for images, none for vectors
    value_range: tuple[float, float] | None = None
    # text (format 3): a file of the bundle, the most tokens an input keeps, the padding id
    tokenizer: str | None = None
    max_length: int | None = Field(None, ge=1)
    pad_id: int = 0
    truncation: Truncation = "keep_start"

    @model_validator(mode="after")
    def _text_has_its_tokenizer(self) -> InputSpec:
        text = self.kind == "text"
        if text and (self.tokenizer is None or self.max_length is None or self.dtype != "int64"):
            raise ValueError("a text input names its tokenizer and max_length, dtype int64")
        if text and self.shape != [self.max_length]:
            raise ValueError(f"a text input's shape is [max_length], got {self.shape}")
        if not text and (self.tokenizer is not None or self.dtype != "float32"):
            raise ValueError(f"an {self.kind} input is float32 and has no tokenizer")
        return self

    @property
    def accepted_range(self) -> tuple[float, float] | None:
        if self.value_range is not None:
            return self.value_range
        return (0.0, 255.0) if self.kind == "image" else None

    def to_model(self, raw: np.ndarray) -> np.ndarray:
        """Raw values, any shape, as the encoder takes them: raw * scale + offset, float32.

        A float32 `raw` is scaled in float32, a float64 one in float64, then rounded to float32."""
        if self.kind == "text":
            raise TypeError("text becomes model input through its tokenizer (Bundle.tokenizer)")
        return np.asarray(raw * self.scale + self.offset).astype(np.float32, copy=False)

    def to_raw(self, model_input: np.ndarray) -> np.ndarray:
        """The inverse of `to_model`: model input back in the user's units."""
        return np.asarray((model_input - self.offset) / self.scale)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's `input` for this spec (a `value_range` only when it has one, the
        length rule only for text)."""
        text_only = set() if self.kind == "text" else {"pad_id", "truncation"}
        return self.model_dump(exclude_none=True, exclude=text_only)


@dataclass(frozen=True)
class Calibration:
    """The manifest's `calibration`: how `unknown` is decided (docs/open-world.md), with the
    defaults of a manifest that lacks a key (format 1 has `quantile` and `thresholds` only;
    its 5% quantile accepts 0.95).

    Thresholds are per class (None: the class had no correctly predicted validation item),
    in the class rule's score units for `thresholds`, of the kNN similarity for
    `knn_thresholds`. The keys after `thresholds` come with an open set (format 2)."""

    thresholds: Mapping[str, float | None] = field(default_factory=dict)
    # the share of each class's correctly predicted validation items accepted (all checks)
    accept: float = 0.95
    per_check_accept: float | None = None  # the share each of the two class checks passes
    knn_thresholds: Mapping[str, float | None] = field(default_factory=dict)
    guard_accept: float | None = None  # the share of validation items the input guard passes
    guard_threshold: float | None = None  # input-guard score below which an input is outside
    imprint_capture: float = 0.005  # the share of known items an imprinted class may take
    # provenance: how and on which split the thresholds were set, under which class rule
    method: str | None = None
    split: str | None = None
    rule: str | None = None

    @property
    def check_accept(self) -> float:
        """What one class check accepts: the acceptance an imprinted class's threshold is
        set to, as the bundle's classes were."""
        return self.accept if self.per_check_accept is None else self.per_check_accept

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any]) -> Calibration:
        def number(key: str) -> float | None:
            return None if raw.get(key) is None else float(raw[key])

        return cls(
            thresholds=dict(raw.get("thresholds", {})),
            accept=float(raw.get("accept", 0.95)),
            per_check_accept=number("per_check_accept"),
            knn_thresholds=dict(raw.get("knn_thresholds", {})),
            guard_accept=number("guard_accept"),
            guard_threshold=number("guard_threshold"),
            imprint_capture=float(raw.get("imprint_capture", 0.005)),
            method=raw.get("method"),
            split=raw.get("split"),
            rule=raw.get("rule"),
        )

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's `calibration`, keys in the order training has always written them;
        the open-set keys only with `per_check_accept`, provenance only where it is set."""
        out: dict[str, Any] = {
            "method": self.method,
            "accept": self.accept,
            "split": self.split,
            "rule": self.rule,
            "thresholds": dict(self.thresholds),
        }
        if self.per_check_accept is not None:
            out |= {
                "per_check_accept": self.per_check_accept,
                "knn_thresholds": dict(self.knn_thresholds),
                "guard_accept": self.guard_accept,
                "guard_threshold": self.guard_threshold,
                "imprint_capture": self.imprint_capture,
            }
        return {key: value for key, value in out.items() if value is not None}


class Manifest(BaseModel):
    """The manifest keys any client may rely on; other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")

    format_version: int
    name: str
    created: str
    loss: dict[str, Any]
    architecture: dict[str, Any]
    input: InputSpec
    embedding_dim: int = Field(gt=0)
    class_rule: ClassRuleName
    labels: list[str] = Field(min_length=1)
    files: dict[str, str]
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    # How `unknown` is decided, as written (typed with its defaults: `Bundle.calibration`)
    calibration: dict[str, Any] = Field(default_factory=dict)
    # Format 2: {"features": {"output", "dim", "layer"}, "knn_k", ...} when the bundle ships
    # open_set.npz and its encoder has a `features` output
    open_set: dict[str, Any] | None = None


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    class_vectors: np.ndarray  # (K, D) float32
    class_bias: np.ndarray | None  # (K,) float32, `dot` rule only
    open_set: OpenSet | None = None  # format 2 bundles that ship it

    @property
    def encoder_path(self) -> Path:
        return self.path / ENCODER_FILE

    @property
    def model_id(self) -> str:
        """The encoder's sha256: what stored items and added classes are keyed by, so that
        vectors of one model are never searched with another's."""
        return self.manifest.files[ENCODER_FILE]

    @property
    def calibration(self) -> Calibration:
        """The manifest's `calibration`, typed, with the defaults of the keys it lacks."""
        return Calibration.from_manifest(self.manifest.calibration)

    def tokenizer(self) -> TextTokenizer:
        """A text bundle's tokenizer, with the manifest's length rule (a new one per call:
        keep it)."""
        spec = self.manifest.input
        if spec.tokenizer is None or spec.max_length is None:
            raise BundleError(f"{self.path}: a {spec.kind} bundle has no tokenizer")
        return TextTokenizer(
            self.path / spec.tokenizer, max_length=spec.max_length, pad_id=spec.pad_id
        )


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_bundle(
    out_dir: Path,
    *,
    manifest: dict[str, Any],
    encoder_onnx: Path,
    class_vectors: np.ndarray,
    class_bias: np.ndarray | None = None,
    open_set: OpenSet | None = None,
    extra_files: dict[str, Path] | None = None,
) -> Bundle:
    """Write a complete bundle; `files` and `created` in the manifest are filled in here.

    `extra_files` (report, plots, metrics.json) are copied in and hashed too.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if encoder_onnx.resolve() != (out_dir / ENCODER_FILE).resolve():
        shutil.copyfile(encoder_onnx, out_dir / ENCODER_FILE)
    np.save(out_dir / CLASS_VECTORS_FILE, np.asarray(class_vectors, dtype=np.float32))
    names = [ENCODER_FILE, CLASS_VECTORS_FILE]
    if class_bias is not None:
        np.save(out_dir / CLASS_BIAS_FILE, np.asarray(class_bias, dtype=np.float32))
        names.append(CLASS_BIAS_FILE)
    if open_set is not None:
        np.savez(out_dir / OPEN_SET_FILE, allow_pickle=False, **open_set.arrays())
        names.append(OPEN_SET_FILE)
    for name, src in (extra_files or {}).items():
        dest = out_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dest.resolve():
            shutil.copyfile(src, dest)
        names.append(name)
    full = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
        "files": {name: sha256_file(out_dir / name) for name in sorted(names)},
    }
    Manifest.model_validate(full)  # refuse to write a bundle we could not read back
    (out_dir / "manifest.json").write_text(json.dumps(full, indent=2) + "\n")
    return load_bundle(out_dir)


def load_bundle(path: Path | str, *, check_onnx: bool = True) -> Bundle:
    """Read and verify a bundle: hashes, array shapes, and the ONNX graph's signature."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no manifest.json (is this a model bundle folder?)")
    try:
        manifest = Manifest.model_validate(json.loads(manifest_path.read_text()))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from exc
    except ValidationError as exc:
        raise BundleError(f"{manifest_path}: invalid manifest: {exc}") from exc
    if manifest.format_version not in READABLE_VERSIONS:
        raise BundleError(
            f"{manifest_path}: format_version {manifest.format_version} is not supported "
            f"(this reader knows {', '.join(map(str, READABLE_VERSIONS))})"
        )

    required = [ENCODER_FILE, CLASS_VECTORS_FILE]
    if manifest.class_rule == "dot":
        required.append(CLASS_BIAS_FILE)
    if manifest.open_set is not None:
        required.append(OPEN_SET_FILE)
    if manifest.input.tokenizer is not None:
        required.append(manifest.input.tokenizer)
    for name in required:
        if name not in manifest.files:
            raise BundleError(f"{manifest_path}: 'files' does not list {name}")
    for name, expected in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: file {name} is listed in the manifest but missing")
        actual = sha256_file(file)
        if actual != expected:
            raise BundleError(
                f"{path}: {name} has sha256 {actual[:12]}..., manifest says {expected[:12]}... "
                "(file changed or corrupted after export)"
            )

    k, d = len(manifest.labels), manifest.embedding_dim
    class_vectors = np.load(path / CLASS_VECTORS_FILE)
    if class_vectors.shape != (k, d):
        raise BundleError(
            f"{path}: class_vectors.npy has shape {list(class_vectors.shape)}, expected "
            f"[{k}, {d}] from {k} labels and embedding_dim {d}"
        )
    class_bias = None
    if manifest.class_rule == "dot":
        class_bias = np.load(path / CLASS_BIAS_FILE).astype(np.float32)
        if class_bias.shape != (k,):
            raise BundleError(
                f"{path}: class_bias.npy has shape {list(class_bias.shape)}, expected [{k}]"
            )
    open_set = None
    if manifest.open_set is not None:
        open_set = _load_open_set(path, manifest.open_set, len(manifest.labels))
    bundle = Bundle(path, manifest, class_vectors.astype(np.float32), class_bias, open_set)
    if manifest.input.kind == "text":
        try:
            bundle.tokenizer()
        except Exception as exc:  # tokenizers raises its own untyped errors
            raise BundleError(
                f"{path}: {manifest.input.tokenizer} is not a tokenizer: {exc}"
            ) from exc
    if check_onnx:
        _check_onnx_signature(path / ENCODER_FILE, manifest)
    return bundle


def _load_open_set(path: Path, spec: dict[str, Any], k: int) -> OpenSet:
    try:
        with np.load(path / OPEN_SET_FILE, allow_pickle=False) as data:
            open_set = OpenSet.from_arrays(dict(data), int(spec["knn_k"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise BundleError(
            f"{path}: {OPEN_SET_FILE} or manifest open_set is incomplete: {exc}"
        ) from exc
    dim = spec.get("features", {}).get("dim")
    if open_set.bank.shape[1] != dim or open_set.centre.shape != (dim,):
        raise BundleError(
            f"{path}: {OPEN_SET_FILE} holds features of width {open_set.bank.shape[1]}, "
            f"the manifest says {dim}"
        )
    if set(np.unique(open_set.bank_labels)) != set(range(k)):
        raise BundleError(f"{path}: {OPEN_SET_FILE} must hold training items of all {k} classes")
    return open_set


def _check_onnx_signature(onnx_path: Path, manifest: Manifest) -> None:
    import onnxruntime as ort  # local: keeps `import corel.bundle` cheap

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise BundleError(f"{onnx_path}: onnxruntime cannot load it: {exc}") from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = ["embedding"] if manifest.open_set is None else ["embedding", "features"]
    if [i.name for i in inputs] != ["input"] or [o.name for o in outputs] != expected:
        raise BundleError(
            f"{onnx_path}: expected input 'input' and outputs {expected}, found inputs "
            f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}"
        )
    in_type = {"float32": "tensor(float)", "int64": "tensor(int64)"}[manifest.input.dtype]
    if inputs[0].type != in_type:
        raise BundleError(f"{onnx_path}: input is {inputs[0].type}, the manifest says {in_type}")
    in_shape, out_shape = inputs[0].shape, outputs[0].shape
    if len(in_shape) != 1 + len(manifest.input.shape) or any(
        isinstance(got, int) and got != want
        for got, want in zip(in_shape[1:], manifest.input.shape, strict=True)
    ):
        raise BundleError(
            f"{onnx_path}: input shape {in_shape} does not match manifest input.shape "
            f"[N, {', '.join(map(str, manifest.input.shape))}]"
        )
    if isinstance(in_shape[0], int) and in_shape[0] != -1:
        raise BundleError(f"{onnx_path}: batch axis is fixed at {in_shape[0]}, must be dynamic")
    dim = out_shape[1] if len(out_shape) == 2 else None
    if len(out_shape) != 2 or (isinstance(dim, int) and dim != manifest.embedding_dim):
        raise BundleError(
            f"{onnx_path}: output shape {out_shape} does not match embedding_dim "
            f"{manifest.embedding_dim}"
        )
