"""Bring a format-1 bundle of the paper's CNN to format 2 without training it again.

The encoder's weights are read back from its ONNX graph (the exporter names them as the
torch module does), checked against it, and exported again with the `features` output;
the open set and the calibration are then fitted as `corel-train` does (training/export.py)
on the dataset and validation split of the manifest. Class vectors, metrics and the
report stay as they were: the model is the same.

    python -m training.upgrade models/fashion-mnist-cosine
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import onnx
import torch
from onnx import numpy_helper

from corel.bundle import CLASS_VECTORS_FILE, ENCODER_FILE, Bundle, load_bundle, write_bundle
from corel.class_rule import rule_for
from corel.logs import setup_logging
from training.config import TrainConfig
from training.data import load_dataset
from training.encoders import PaperCNN, build_encoder
from training.evaluate import OnnxEncoder
from training.export import check_parity, export_onnx, git_commit, open_set_and_calibration
from training.open_set import open_set_manifest

log = logging.getLogger(__name__)

KEPT_BY_WRITE = {"format_version", "created", "files"}  # write_bundle sets these anew


def encoder_from_onnx(bundle: Bundle, config: TrainConfig) -> PaperCNN:
    weights = {
        init.name: torch.from_numpy(numpy_helper.to_array(init).copy())
        for init in onnx.load(str(bundle.encoder_path)).graph.initializer
    }
    encoder = build_encoder(
        config.encoder,
        bundle.manifest.input.kind,
        tuple(bundle.manifest.input.shape),
        config.embedding_dim,
        config.leaky_slope,
        config.final_activation,
    )
    if not isinstance(encoder, PaperCNN):
        raise ValueError("only bundles of the paper's CNN have a features output to add")
    names = set(encoder.state_dict())
    encoder.load_state_dict({k: v for k, v in weights.items() if k in names})
    return encoder.eval()


def upgrade(path: Path) -> Bundle:
    bundle = load_bundle(path)
    config = TrainConfig.from_dict(bundle.manifest.training["config"])
    data = load_dataset(
        config.dataset, data_dir=config.data_dir, val_size=config.val_size, seed=config.seed
    )
    encoder = encoder_from_onnx(bundle, config)
    sample = data.model_input(data.x_test[:256])
    check_parity(encoder, OnnxEncoder(bundle.encoder_path), sample)  # the bundle's weights
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / ENCODER_FILE
        export_onnx(encoder, data.shape, onnx_path, features=True)
        onnx = OnnxEncoder(onnx_path)
        parity = check_parity(encoder, onnx, sample, features=True)
        test_emb = onnx.run(data.model_input(data.x_test))
        scores = rule_for(bundle.manifest.class_rule).scores(
            test_emb, bundle.class_vectors, bundle.class_bias
        )
        accuracy = float((scores.argmax(1) == data.y_test).mean())
        log.info("re-exported: parity %.2e, test accuracy %.4f", parity, accuracy)
        open_set, calibration = open_set_and_calibration(
            encoder,
            onnx,
            data,
            bundle.class_vectors,
            bundle.manifest.class_rule,
            bundle.class_bias,
            seed=config.seed,
        )
        assert open_set is not None  # a PaperCNN has features
        manifest: dict[str, Any] = {
            k: v for k, v in bundle.manifest.model_dump().items() if k not in KEPT_BY_WRITE
        }
        manifest["calibration"] = calibration.to_manifest()
        manifest["open_set"] = open_set_manifest(open_set)
        manifest["training"]["upgraded"] = {
            "from_format": bundle.manifest.format_version,
            "by": "python -m training.upgrade",
            "commit": git_commit(),
            "onnx_parity_max_abs_diff": parity,
            "test_accuracy_after": accuracy,
        }
        # the report files are the same; copied out first, as the bundle folder is rewritten
        extra = {}
        for name in bundle.manifest.files:
            if name not in {ENCODER_FILE, CLASS_VECTORS_FILE, "open_set.npz"}:
                extra[name] = Path(tmp) / name
                shutil.copyfile(path / name, extra[name])
        return write_bundle(
            path,
            manifest=manifest,
            encoder_onnx=onnx_path,
            class_vectors=bundle.class_vectors,
            class_bias=bundle.class_bias,
            open_set=open_set,
            extra_files=extra,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    args = parser.parse_args()
    setup_logging()
    bundle = upgrade(args.bundle)
    summary = {"bundle": str(args.bundle), "open_set": bundle.manifest.open_set}
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
