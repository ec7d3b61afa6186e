"""Command-line entry points: `corel-train` and `corel-eval` (see `--help` of each).

`corel-train`'s training options are TrainConfig's fields (training/options.py); only the
options about the run itself (where the bundle goes, resuming, logging) are declared here.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import click

from corel.logs import setup_logging
from training.config import TrainConfig, field_help
from training.options import CONTEXT, config_options

QUIET_HELP = "No progress bars or info logs."


@click.command(context_settings=CONTEXT)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Bundle folder to write, e.g. models/my-model.",
)
@config_options()
@click.option("--name", help="Bundle name (default: the folder's name).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt if it exists.")
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def train_app(out: Path, config: TrainConfig, name: str | None, resume: bool, quiet: bool) -> None:
    """Train an encoder, export it to ONNX and write a model bundle with its evaluation.

    \b
    Examples:
      corel-train --dataset fashion-mnist --loss cosine --lam 0.15 --out models/my-model
      corel-train --preset fashion-mnist-cosine --epochs 5 --out models/quick
    """
    setup_logging(logging.WARNING if quiet else logging.INFO)
    from training.data import DatasetError, load_dataset
    from training.export import export_bundle
    from training.train import train
    from training.word_vectors import WordVectorsError

    try:
        data = load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            val_size=config.val_size,
            seed=config.seed,
            max_length=config.max_length,
            vocab_size=config.vocab_size,
        )
        # ValueError: an encoder that does not fit the data, a checkpoint of another config;
        # WordVectorsError: --word-vectors without its package
        result = train(
            config, data, checkpoint=out / "checkpoint.pt", resume=resume, progress=not quiet
        )
    except (DatasetError, ValueError, WordVectorsError) as exc:
        raise click.UsageError(str(exc)) from exc
    command = "corel-train " + shlex.join(sys.argv[1:])
    bundle = export_bundle(result, data, out, name=name or out.name, command=command)
    seconds = round(result.seconds, 1)
    summary = {"bundle": str(out), "best_epoch": result.best_epoch, "seconds": seconds}
    click.echo(json.dumps({**summary, **bundle.manifest.metrics}, indent=2))


@click.command(context_settings=CONTEXT)
@click.argument("bundle_path", type=click.Path(path_type=Path))
@click.option("--dataset", help="Dataset to score on (default: the one the bundle was trained on).")
@click.option(
    "--data-dir",
    default=TrainConfig.data_dir,
    show_default=True,
    help=field_help("data_dir"),
)
@click.option(
    "--report",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write metrics.json, report.md and plots into this folder.",
)
@click.option(
    "--no-plots",
    is_flag=True,
    help="Leave the plots out of --report (their t-SNE takes seconds per thousand items).",
)
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def eval_app(
    bundle_path: Path,
    dataset: str | None,
    data_dir: str,
    report: Path | None,
    no_plots: bool,
    quiet: bool,
) -> None:
    """Re-evaluate a bundle on its test split with onnxruntime alone (no torch needed).

    Checks the bundle (hashes, shapes), embeds the test set, and prints accuracy by class
    rule, K-Means/GMM accuracy, ARI, V-measure and silhouette.
    """
    setup_logging(logging.WARNING if quiet else logging.INFO)
    from corel.bundle import BundleError, load_bundle
    from training.data import DatasetError, load_dataset

    try:
        bundle = load_bundle(bundle_path)
        training = bundle.manifest.training
        config = training.get("config", {})
        name = dataset or config.get("dataset") or training.get("dataset", "fashion-mnist")
        data = load_dataset(
            name,
            data_dir=data_dir,
            val_size=config.get("val_size"),
            seed=config.get("seed", 0),
            max_length=config.get("max_length", TrainConfig.max_length),
            vocab_size=config.get("vocab_size", TrainConfig.vocab_size),
        )
    except (BundleError, DatasetError) as exc:
        raise click.UsageError(str(exc)) from exc
    from training.evaluate import evaluate_bundle, write_report  # scikit-learn: seconds to import

    # the clustering seed of the training run, so the numbers reproduce the manifest's
    # text: the test strings, through the bundle's own tokenizer
    raw = data.x_test if data.text is None else data.text.test_texts
    evaluation, embeddings = evaluate_bundle(bundle, raw, data.y_test, seed=config.get("seed", 0))
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
            plots=not no_plots,
        )
    summary = {"bundle": str(bundle_path), "dataset": data.name, "n": evaluation.n}
    click.echo(json.dumps({**summary, **evaluation.headline().to_json()}, indent=2))
