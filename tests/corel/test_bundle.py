"""The bundle reader: a good bundle loads; each kind of damage is named in the error."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from corel.bundle import (
    FORMAT_VERSION,
    BundleError,
    Calibration,
    InputSpec,
    load_bundle,
    sha256_file,
)
from tests.conftest import DEFAULT_BUNDLE


@pytest.fixture
def bundle_copy(digits_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(digits_bundle, tmp_path / "bundle"))


def rewrite_manifest(path: Path, **changes: object) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_load_reads_manifest_and_class_vectors(digits_bundle: Path) -> None:
    bundle = load_bundle(digits_bundle)
    manifest = bundle.manifest
    assert manifest.format_version == FORMAT_VERSION  # training writes the current format
    assert manifest.loss["name"] == "cosine_corel"
    assert manifest.class_rule == "cosine"
    assert manifest.input.kind == "image" and manifest.input.shape == [1, 8, 8]
    assert bundle.class_vectors.shape == (10, manifest.embedding_dim)
    assert bundle.class_bias is None
    assert set(manifest.files) >= {"encoder.onnx", "class_vectors.npy", "report.md"}
    assert set(manifest.calibration["thresholds"]) == set(manifest.labels)
    # the paper's CNN ships an open set: its flattened convolutions and training items'
    assert bundle.open_set is not None and manifest.open_set is not None
    width = manifest.open_set["features"]["dim"]
    assert bundle.open_set.bank.shape[1] == width == 60  # 60 filters of 1x1 after 3 poolings
    assert set(manifest.calibration["knn_thresholds"]) == set(manifest.labels)


def as_format_1(path: Path) -> None:
    """What a format-1 writer made: one ONNX output, no open set."""
    import onnx

    model = onnx.load(str(path / "encoder.onnx"))
    kept = [o for o in model.graph.output if o.name == "embedding"]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    onnx.save(model, str(path / "encoder.onnx"))
    (path / "open_set.npz").unlink()
    manifest = json.loads((path / "manifest.json").read_text())
    files = {n: sha256_file(path / n) for n in manifest["files"] if n != "open_set.npz"}
    del manifest["open_set"]
    manifest |= {"format_version": 1, "files": files}
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_format_1_bundle_still_loads_without_an_open_set(bundle_copy: Path) -> None:
    as_format_1(bundle_copy)
    bundle = load_bundle(bundle_copy)
    assert bundle.manifest.format_version == 1 and bundle.open_set is None


def test_load_rejects_an_open_set_the_encoder_does_not_output(bundle_copy: Path) -> None:
    as_format_1(bundle_copy)
    rewrite_manifest(bundle_copy, format_version=2, open_set={"features": {"dim": 60}})
    with pytest.raises(BundleError, match=r"'files' does not list open_set\.npz"):
        load_bundle(bundle_copy)


def test_load_rejects_a_tampered_file(bundle_copy: Path) -> None:
    with (bundle_copy / "encoder.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"encoder\.onnx has sha256 .* manifest says"):
        load_bundle(bundle_copy)


def test_load_rejects_class_vectors_of_the_wrong_shape(bundle_copy: Path) -> None:
    np.save(bundle_copy / "class_vectors.npy", np.zeros((9, 128), np.float32))
    files = json.loads((bundle_copy / "manifest.json").read_text())["files"]
    files["class_vectors.npy"] = sha256_file(bundle_copy / "class_vectors.npy")
    rewrite_manifest(bundle_copy, files=files)
    expected = r"class_vectors\.npy has shape \[9, 128\], expected \[10, 128\]"
    with pytest.raises(BundleError, match=expected):
        load_bundle(bundle_copy)


def test_load_rejects_an_input_shape_the_encoder_does_not_take(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    rewrite_manifest(bundle_copy, input={**manifest["input"], "shape": [1, 28, 28]})
    with pytest.raises(BundleError, match=r"input shape .* does not match manifest input\.shape"):
        load_bundle(bundle_copy)


def test_load_rejects_a_missing_file(bundle_copy: Path) -> None:
    (bundle_copy / "class_vectors.npy").unlink()
    with pytest.raises(BundleError, match=r"class_vectors\.npy is listed in the manifest"):
        load_bundle(bundle_copy)


def test_load_rejects_a_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load_bundle(tmp_path)


def test_load_rejects_an_unknown_format_version(bundle_copy: Path) -> None:
    rewrite_manifest(bundle_copy, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BundleError, match=f"format_version {FORMAT_VERSION + 1} is not supported"):
        load_bundle(bundle_copy)


def test_the_input_spec_applies_the_model_input_rule_and_undoes_it() -> None:
    spec = InputSpec(kind="vector", shape=[3], scale=0.5, offset=-1.0)
    raw = np.array([[0.0, 2.0, 4.0]], np.float32)
    model_input = spec.to_model(raw)
    assert model_input.dtype == np.float32 and model_input.tolist() == [[-1.0, 0.0, 1.0]]
    assert spec.to_raw(model_input).tolist() == raw.tolist()
    # float32 pixels are scaled in float32, as the service's batch of tensors always was
    pixels = np.arange(256, dtype=np.float32)
    grey = InputSpec(kind="image", shape=[1, 16, 16], scale=1 / 255)
    assert np.array_equal(grey.to_model(pixels), pixels * np.float32(1 / 255) + np.float32(0))
    assert grey.to_manifest() == {
        "kind": "image",
        "shape": [1, 16, 16],
        "dtype": "float32",
        "scale": 1 / 255,
        "offset": 0.0,
    }


def test_the_shipped_bundle_reads_its_calibration_typed_and_writes_it_back_as_it_was() -> None:
    bundle = load_bundle(DEFAULT_BUNDLE, check_onnx=False)  # every file's sha256 checked
    raw = bundle.manifest.calibration
    calibration = bundle.calibration
    assert calibration.check_accept == raw["per_check_accept"] == pytest.approx(0.95**0.5)
    assert calibration.thresholds == raw["thresholds"]
    assert calibration.knn_thresholds == raw["knn_thresholds"]
    assert calibration.guard_threshold == raw["guard_threshold"]
    assert calibration.imprint_capture == raw["imprint_capture"]
    written = calibration.to_manifest()
    assert written == raw and list(written) == list(raw)  # the keys in the order they were


def test_a_format_1_calibration_gets_the_defaults() -> None:
    calibration = Calibration.from_manifest({"quantile": 0.05, "thresholds": {"a": 0.5}})
    assert calibration.thresholds == {"a": 0.5} and calibration.knn_thresholds == {}
    assert calibration.check_accept == 0.95 and calibration.imprint_capture == 0.005
    assert calibration.guard_threshold is None and calibration.per_check_accept is None
    assert Calibration.from_manifest({}).check_accept == 0.95


def test_a_text_input_names_its_tokenizer_and_takes_token_ids() -> None:
    text = InputSpec(kind="text", shape=[64], dtype="int64", tokenizer="tokenizer.json",
                     max_length=64)  # fmt: skip
    assert text.max_length == 64 and text.truncation == "keep_start" and text.pad_id == 0
    with pytest.raises(ValidationError, match="names its tokenizer"):
        InputSpec(kind="text", shape=[64], dtype="int64", max_length=64)
    with pytest.raises(ValidationError, match="shape is \\[max_length\\]"):
        InputSpec(kind="text", shape=[32], dtype="int64", tokenizer="t.json", max_length=64)
    with pytest.raises(ValidationError, match="float32 and has no tokenizer"):
        InputSpec(kind="image", shape=[1, 8, 8], tokenizer="tokenizer.json")
    with pytest.raises(TypeError, match="through its tokenizer"):
        text.to_model(np.zeros(3))
