"""Command-line entry points: `corel-train` and `corel-eval` (see `--help` of each)."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from training.config import DEFAULT_FASHION_MNIST_DIR, TrainConfig

train_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
eval_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

DataDir = Annotated[
    str,
    typer.Option(
        envvar="COREL_FASHION_MNIST_DIR",
        help="Folder with the four Fashion-MNIST IDX .gz files (Debian: dataset-fashion-mnist).",
    ),
]


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@train_app.command()
def train(
    out: Annotated[Path, typer.Option(help="Bundle folder to write, e.g. models/my-model.")],
    dataset: Annotated[
        str,
        typer.Option(
            help="fashion-mnist, digits, or a path: image folder (one sub-folder per class), "
            ".npz with x and y, or .csv with a 'label' column."
        ),
    ] = "fashion-mnist",
    data_dir: DataDir = DEFAULT_FASHION_MNIST_DIR,
    loss: Annotated[
        str,
        typer.Option(
            help="cosine (Cosine-COREL), gaussian (Gaussian-COREL), cce (cross-entropy), "
            "center (center loss) or contrastive (Siamese)."
        ),
    ] = "cosine",
    lam: Annotated[
        float | None,
        typer.Option(
            help="Attraction weight lambda; default: the paper's tuned value "
            "(cosine 0.15, gaussian 0.85, center 0.35)."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 20,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    lr_schedule: Annotated[str, typer.Option(help="constant or cosine.")] = "constant",
    augment: Annotated[bool, typer.Option(help="Images: random flips and 2-pixel shifts.")] = False,
    batch_size: Annotated[int, typer.Option()] = 128,
    patience: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs without a better validation accuracy."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds weights, shuffling and the val split.")] = 0,
    encoder: Annotated[str, typer.Option(help="auto, cnn or ffnn.")] = "auto",
    embedding_dim: Annotated[int, typer.Option(help="Width D of the embedding.")] = 128,
    final_activation: Annotated[
        bool,
        typer.Option(
            help="LeakyReLU after the last layer (the paper's); --no-final-activation: linear h."
        ),
    ] = True,
    val_size: Annotated[
        int | None,
        typer.Option(help="Validation items taken from the training split (default 5,000 or 10%)."),
    ] = None,
    max_train: Annotated[int | None, typer.Option(help="Use only this many train items.")] = None,
    gamma: Annotated[float, typer.Option(help="Gaussian-COREL width.")] = 0.5,
    center_alpha: Annotated[float, typer.Option(help="Center loss centre rate.")] = 0.5,
    margin: Annotated[float, typer.Option(help="Contrastive loss margin.")] = 1.0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    name: Annotated[str | None, typer.Option(help="Bundle name (default: folder name).")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from OUT/checkpoint.pt if it exists.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars or info logs.")] = False,
) -> None:
    """Train an encoder, export it to ONNX and write a model bundle with its evaluation.

    Example: corel-train --dataset fashion-mnist --loss cosine --lam 0.15 --out models/my-model
    """
    _setup_logging(quiet)
    from training.data import DatasetError, load_dataset
    from training.export import export_bundle
    from training.train import train as run_training

    try:
        config = TrainConfig(
            dataset=dataset,
            data_dir=data_dir,
            val_size=val_size,
            max_train=max_train,
            encoder=encoder,
            embedding_dim=embedding_dim,
            final_activation=final_activation,
            loss=loss,
            lam=lam,
            gamma=gamma,
            center_alpha=center_alpha,
            margin=margin,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            lr_schedule=lr_schedule,
            augment=augment,
            patience=patience,
            seed=seed,
            threads=threads,
        )
        data = load_dataset(
            config.dataset, data_dir=config.data_dir, val_size=config.val_size, seed=config.seed
        )
    except (ValueError, DatasetError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    result = run_training(
        config, data, checkpoint=out / "checkpoint.pt", resume=resume, progress=not quiet
    )
    command = "corel-train " + shlex.join(sys.argv[1:])
    bundle = export_bundle(result, data, out, name=name or out.name, command=command)
    typer.echo(
        json.dumps(
            {
                "bundle": str(out),
                "best_epoch": result.best_epoch,
                "seconds": round(result.seconds, 1),
                **bundle.manifest.metrics,
            },
            indent=2,
        )
    )


@eval_app.command()
def evaluate(
    bundle_path: Annotated[Path, typer.Argument(help="A bundle folder, e.g. models/NAME.")],
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset to score on (default: the one the bundle was trained on)."),
    ] = None,
    data_dir: DataDir = DEFAULT_FASHION_MNIST_DIR,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write metrics.json, report.md and plots into this folder."),
    ] = None,
    quiet: Annotated[bool, typer.Option()] = False,
) -> None:
    """Re-evaluate a bundle on its test split with onnxruntime alone (no torch needed).

    Checks the bundle (hashes, shapes), embeds the test set, and prints accuracy by class
    rule, K-Means/GMM accuracy, ARI, V-measure and silhouette.
    """
    _setup_logging(quiet)
    from corel.bundle import BundleError, load_bundle
    from training.data import DatasetError, load_dataset
    from training.evaluate import evaluate_bundle, write_report

    try:
        bundle = load_bundle(bundle_path)
        training = bundle.manifest.training
        config = training.get("config", {})
        name = dataset or config.get("dataset") or training.get("dataset", "fashion-mnist")
        data = load_dataset(
            name, data_dir=data_dir, val_size=config.get("val_size"), seed=config.get("seed", 0)
        )
    except (BundleError, DatasetError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    # the clustering seed of the training run, so the numbers reproduce the manifest's
    evaluation, embeddings = evaluate_bundle(
        bundle, data.x_test, data.y_test, seed=config.get("seed", 0)
    )
    evaluation = replace(evaluation, dataset=data.name, split="test")
    if report is not None:
        write_report(
            report,
            title=f"{bundle.manifest.name} re-evaluated on {data.name}",
            evaluation=evaluation,
            history=None,
            embeddings=embeddings,
            labels=data.y_test,
            names=bundle.manifest.labels,
        )
    typer.echo(
        json.dumps(
            {
                "bundle": str(bundle_path),
                "dataset": data.name,
                "n": evaluation.n,
                **evaluation.headline().to_json(),
            },
            indent=2,
        )
    )
