"""ONNX export with a parity check, and the bundle: encoder, class vectors, report."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from corel.bundle import TOKENIZER_FILE, Bundle, Calibration, write_bundle
from corel.open_set import OpenSet
from training.data import Dataset
from training.evaluate import OnnxEncoder, evaluate_embeddings, write_report
from training.losses import LOSS_MANIFEST_NAMES
from training.open_set import (
    WithFeatures,
    calibrate,
    embed_with_features,
    fit_open_set,
    has_features,
    open_set_manifest,
)
from training.train import TrainResult

log = logging.getLogger(__name__)

PARITY_ATOL = 1e-4


class ExportError(Exception):
    """The exported ONNX graph does not reproduce the torch encoder."""


def export_onnx(
    encoder: nn.Module,
    input_shape: tuple[int, ...],
    path: Path,
    *,
    features: bool = False,
    text: bool = False,
) -> None:
    """One self-contained ONNX file: input `input` [N, ...], output `embedding` [N, D], and
    with `features` a second output `features` [N, F] (training/open_set.py). With `text`
    the input is token ids [N, L] int64, L dynamic too (the encoder masks the padding)."""
    encoder = encoder.eval()
    model = WithFeatures(encoder).eval() if features else encoder
    # The dynamo exporter logs every unregistered torchvision op and a deprecation notice,
    # and its optimiser each pass it runs; none of it concerns this encoder.
    for logger in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    example = torch.zeros(2, *input_shape, dtype=torch.int64 if text else torch.float32)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    axes = {0: batch, 1: torch.export.Dim("length", min=1, max=1 << 16)} if text else {0: batch}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["input"],
            output_names=["embedding", "features"] if features else ["embedding"],
            dynamic_shapes=(axes,),  # of the one positional input
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:  # only the legacy exporter returns nothing
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def check_parity(
    encoder: nn.Module, onnx: OnnxEncoder, model_input: np.ndarray, *, features: bool = False
) -> float:
    """Max absolute difference between torch and onnxruntime on real inputs (both outputs)."""
    with torch.no_grad():
        expected = encoder.eval()(torch.from_numpy(model_input)).numpy()
    actual = onnx.run(model_input)
    diff = float(np.abs(expected - actual).max())
    if features:
        _, expected_features = embed_with_features(encoder, model_input)
        actual_features = onnx.run(model_input, output="features")
        diff = max(diff, float(np.abs(expected_features - actual_features).max()))
    if diff > PARITY_ATOL:
        raise ExportError(f"ONNX output differs from torch by {diff:.2e} (> {PARITY_ATOL})")
    return diff


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def open_set_and_calibration(
    encoder: nn.Module,
    onnx: OnnxEncoder,
    data: Dataset,
    class_vectors: np.ndarray,
    rule: str,
    bias: np.ndarray | None,
    *,
    seed: int,
) -> tuple[OpenSet | None, Calibration]:
    """The open set (encoders with a features output) and the manifest's `calibration`,
    from the exported ONNX graph on the validation split."""
    val_input = data.model_input(data.x_val)
    val_emb = onnx.run(val_input)
    if not has_features(encoder):
        return None, calibrate(
            val_emb, None, val_input, data.y_val, class_vectors, rule, data.labels, None, bias
        )
    open_set = fit_open_set(encoder, data, seed=seed)
    val_features = onnx.run(val_input, output="features")
    calibration = calibrate(
        val_emb,
        val_features,
        val_input,
        data.y_val,
        class_vectors,
        rule,
        data.labels,
        open_set,
        bias,
    )
    return open_set, calibration


def export_bundle(
    result: TrainResult,
    data: Dataset,
    out_dir: Path,
    *,
    name: str,
    command: str | None = None,
    plots: bool = True,
) -> Bundle:
    """Export, verify parity, evaluate on the test split with onnxruntime and write the bundle.

    `plots=False` leaves out the report's figures (their t-SNE takes seconds), for tests.
    """
    config, loss, encoder = result.config, result.loss, result.encoder
    features = has_features(encoder)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "encoder.onnx"
        text = data.text
        export_onnx(encoder, data.shape, onnx_path, features=features, text=text is not None)
        onnx = OnnxEncoder(onnx_path)  # one session for the parity check and every run after
        parity = check_parity(encoder, onnx, data.model_input(data.x_test[:256]), features=features)
        log.info(
            "ONNX parity on %d test items: max |diff| = %.2e", min(256, len(data.x_test)), parity
        )

        class_vectors = loss.weight.detach().numpy().astype(np.float32)
        bias = None if loss.bias is None else loss.bias.detach().numpy().astype(np.float32)
        log.info("evaluating the exported encoder on %d test items", len(data.y_test))
        test_emb = onnx.run(data.model_input(data.x_test))
        evaluation = replace(
            evaluate_embeddings(
                test_emb, data.y_test, class_vectors, loss.class_rule, bias, seed=config.seed
            ),
            dataset=data.name,
            split="test",
        )
        open_set, calibration = open_set_and_calibration(
            encoder, onnx, data, class_vectors, loss.class_rule, bias, seed=config.seed
        )

        report_dir = Path(tmp) / "report"
        files = write_report(
            report_dir,
            title=f"{name}: {LOSS_MANIFEST_NAMES[config.loss]} on {data.name}",
            evaluation=evaluation,
            history=result.history,
            embeddings=test_emb,
            labels=data.y_test,
            names=data.labels,
            plots=plots,
        )
        if text is not None:  # the bundle's tokenizer: the dataset's, trained on its train split
            (report_dir / TOKENIZER_FILE).write_text(text.tokenizer_json, encoding="utf-8")
            files.append(TOKENIZER_FILE)
        manifest: dict[str, object] = {
            "name": name,
            "loss": {"name": LOSS_MANIFEST_NAMES[config.loss], **loss.hyperparameters()},
            "architecture": {
                "encoder": type(encoder).__name__,
                "parameters": sum(p.numel() for p in encoder.parameters()),
                "embedding_dim": config.embedding_dim,
                "leaky_slope": config.leaky_slope,
                "final_activation": config.final_activation,
                **(
                    {"vocab_size": text.vocab_size, "word_dim": config.word_dim}
                    if text is not None
                    else {}
                ),
            },
            "input": data.input.to_manifest(),
            "embedding_dim": config.embedding_dim,
            "class_rule": loss.class_rule,
            "labels": data.labels,
            "training": {
                **data.source,
                "command": command,
                "config": config.to_dict(),
                "epochs_run": len(result.history),
                "best_epoch": result.best_epoch,
                "best_val_accuracy": result.best_val_accuracy,
                "seconds": round(result.seconds, 1),
                "interrupted": result.interrupted,
                "seed": config.seed,
                "commit": git_commit(),
                "torch": torch.__version__,
                "onnx_parity_max_abs_diff": parity,
            },
            "metrics": evaluation.headline().to_json(),
            "calibration": calibration.to_manifest(),
        }
        if open_set is not None:
            manifest["open_set"] = open_set_manifest(open_set)
        return write_bundle(
            out_dir,
            manifest=manifest,
            encoder_onnx=onnx_path,
            class_vectors=class_vectors,
            class_bias=bias,
            open_set=open_set,
            extra_files={f: report_dir / f for f in files},
        )
