"""Reproduce the COREL paper's comparison: every loss, several seeds, one markdown table.

The paper's protocol (Kenyon-Dean et al. 2018): the paper's CNN on Fashion-MNIST, Adam at
lr 1e-3, batch 128, 5,000 validation items from the training split, constant learning
rate, no augmentation, and test metrics taken at the epoch of best validation accuracy.
Lambdas are the paper's tuned ones (Cosine 0.15, Gaussian 0.85, Center 0.35); we train
fewer epochs than its 150 so the whole table fits in about an hour on 2 CPU cores.

Each latent space is scored on the 10,000 test images: accuracy by the loss's class rule;
K-Means and a Gaussian mixture on the L2-normalised embeddings (accuracy after Hungarian
matching, ARI, V-measure); the cosine silhouette against the K-Means clusters (the
poster's "K-Means density"); and K-Means accuracy on the raw embeddings beside it.

Every finished run is cached as JSON (and every epoch checkpointed), so a killed run
continues where it stopped when started again with the same arguments.

    python benchmarks/reproduce_paper.py               # the full run (~1 h on 2 cores)
    python benchmarks/reproduce_paper.py --quick       # smoke run on digits (seconds)
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from benchmarks.paper_table import LOSS_TITLES, plot_tsne_grid, report, table_rows  # noqa: E402
from corel.files import atomic_write  # noqa: E402
from corel.logs import setup_logging  # noqa: E402
from harness.results import Provenance  # noqa: E402

log = logging.getLogger("reproduce_paper")

LOSSES = ("cce", "center", "gaussian", "cosine", "contrastive")
TSNE_POINTS = 2000  # t-SNE is quadratic; a seeded sample of the test set is projected


def run_one(spec: dict[str, Any], cache_dir: str, tsne: bool) -> dict[str, Any]:
    """Train one (loss, seed), evaluate its test latent space; cached, so safe to repeat."""
    result_path = Path(cache_dir) / f"{spec['loss']}-seed{spec['seed']}.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    import torch

    from training.config import TrainConfig
    from training.data import load_dataset
    from training.evaluate import evaluate_embeddings
    from training.train import embed, train

    config = TrainConfig.from_dict(spec)
    # a spawned worker starts with no logging set up: show each epoch, tagged by run (a
    # worker trains several runs one after another, so the tag is set for each)
    setup_logging()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s [{config.loss} seed {config.seed}] %(message)s")
        )
    torch.set_num_threads(config.threads or 1)
    data = load_dataset(
        config.dataset, data_dir=config.data_dir, val_size=config.val_size, seed=config.seed
    )
    checkpoint = Path(cache_dir) / "checkpoints" / f"{spec['loss']}-seed{spec['seed']}.pt"
    result = train(config, data, checkpoint=checkpoint, resume=True, progress=False)
    h = embed(result.encoder, data.x_test, data).numpy()  # (N, D)
    loss = result.loss
    bias = None if loss.bias is None else loss.bias.detach().numpy()
    eval_start = time.perf_counter()
    evaluation = evaluate_embeddings(
        h, data.y_test, loss.weight.detach().numpy(), loss.class_rule, bias, seed=config.seed
    )
    row = run_record(config, result, evaluation, eval_seconds=time.perf_counter() - eval_start)
    if tsne:
        row["tsne_file"] = save_tsne(
            h, data.y_test, data.labels, Path(cache_dir).parent / "tsne", config.loss, config.seed
        )
    # atomic: a killed run never leaves half a result
    atomic_write(result_path, (json.dumps(row, indent=1) + "\n").encode())
    checkpoint.unlink(missing_ok=True)  # the result replaces it; checkpoints are large
    return row


def run_record(config: Any, result: Any, evaluation: Any, *, eval_seconds: float) -> dict[str, Any]:
    """What a cached run keeps: its loss and seed, training, and the test evaluation (the
    text table adds its dataset and sizes)."""
    loss = result.loss
    return {
        "loss": config.loss,
        "seed": config.seed,
        "lam": loss.hyperparameters().get("lam"),
        "hyperparameters": loss.hyperparameters(),
        "class_rule": loss.class_rule,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "epochs_run": len(result.history),
        "train_seconds": round(result.seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "headline": evaluation.headline().to_json(),
        "metrics": evaluation.to_json(),
        "history": [asdict(epoch) for epoch in result.history],
        "config": config.to_dict(),
    }


def save_tsne(
    h: np.ndarray, labels: np.ndarray, names: list[str], out_dir: Path, loss: str, seed: int
) -> str:
    """Cosine t-SNE of a seeded sample of the L2-normalised test embeddings, as .npz."""
    from training.evaluate import project_2d

    sample = np.random.default_rng(seed).choice(
        len(labels), min(TSNE_POINTS, len(labels)), replace=False
    )
    points = project_2d(h[sample], seed)["t-SNE"]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{loss}-seed{seed}.npz"
    np.savez_compressed(
        path, points=points.astype(np.float32), labels=labels[sample], names=np.array(names)
    )
    return str(path.relative_to(out_dir.parent))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Smoke run on scikit-learn's digits: 8 epochs, results in --out "
        "(default benchmarks/results/quick).",
    )
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("COREL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"),
    )
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--epochs",
        type=int,
        default=12,
        help="Epochs per run (the paper: 150; 12 fits ~1 h on 2 cores).",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Runs in parallel, each with --threads torch threads.",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=None, help="Results folder (default benchmarks/results)."
    )
    parser.add_argument("--no-tsne", action="store_true", help="Skip the seed-0 t-SNE plots.")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Train nothing: write the table from the runs cached so far.",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.dataset, args.epochs = "digits", min(args.epochs, 8)
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / ("quick" if args.quick else "")
    return args


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = parse_args(argv)
    # --report-only only re-reads the cache: the command that makes the table is without it
    provenance = Provenance.begin("benchmarks/reproduce_paper.py", argv, drop=["--report-only"])
    command = provenance.command
    out: Path = args.out
    cache = out / f"runs-{args.dataset}-e{args.epochs}"  # a different plan, a different cache
    cache.mkdir(parents=True, exist_ok=True)
    specs = [
        dict(
            dataset=args.dataset,
            data_dir=args.data_dir,
            loss=loss,
            seed=seed,
            epochs=args.epochs,
            threads=args.threads,
        )
        for seed in args.seeds
        for loss in args.losses
    ]
    started = time.perf_counter()
    # the wall clock of the whole table counts from the first invocation, across resumes
    first_start_file = cache / "first_started"
    if not first_start_file.is_file():
        first_start_file.write_text(f"{time.time():.0f}\n")
    first_started = float(first_start_file.read_text())
    log.info(
        "%d runs (%s x seeds %s, %d epochs), %d at a time; cache %s",
        len(specs),
        ", ".join(args.losses),
        args.seeds,
        args.epochs,
        args.workers,
        cache,
    )
    # finished runs are read here, so a resumed table starts workers only for what is left
    # (a spawned worker costs seconds of imports before it can even read its cache)
    results = [cache / f"{s['loss']}-seed{s['seed']}.json" for s in specs]
    rows: list[dict[str, Any]] = [json.loads(p.read_text()) for p in results if p.is_file()]
    specs_to_run: list[dict[str, Any]] = []
    if not args.report_only:
        specs_to_run = [s for s, path in zip(specs, results, strict=True) if not path.is_file()]
    if rows:
        log.info("%d of %d runs read from the cache", len(rows), len(specs))
    context = multiprocessing.get_context("spawn")  # no fork after torch started threads
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        futures = {
            pool.submit(
                run_one, spec, str(cache), not args.no_tsne and spec["seed"] == args.seeds[0]
            ): spec
            for spec in specs_to_run
        }
        for future in as_completed(futures):
            row = future.result()
            rows.append(row)
            h = row["headline"]
            log.info(
                "[%d/%d] %s seed %d: acc %.4f, K-Means %.4f, best epoch %d (%.0f s train)",
                len(rows),
                len(specs),
                row["loss"],
                row["seed"],
                h["accuracy"],
                h["kmeans_accuracy"],
                row["best_epoch"],
                row["train_seconds"],
            )
    wall = time.perf_counter() - started
    rows.sort(key=lambda r: (args.losses.index(r["loss"]), r["seed"]))
    summary = {
        "command": command,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "wall_seconds_this_invocation": round(wall, 1),
        # first start to the last cached result (not to now: --report-only may come later)
        "wall_seconds_since_first_start": round(
            max([first_started, *(p.stat().st_mtime for p in cache.glob("*-seed*.json"))])
            - first_started,
            1,
        ),
        "train_seconds_sum": round(sum(r["train_seconds"] for r in rows), 1),
        "missing_runs": [
            f"{s['loss']} seed {s['seed']}"
            for s in specs
            if not any(r["loss"] == s["loss"] and r["seed"] == s["seed"] for r in rows)
        ],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu_count": os.cpu_count(),
        "runs": rows,
    }
    title = f"COREL paper comparison on {summary['dataset']}"
    text = provenance.document(title, report(rows, summary, args.losses))
    provenance.write(out / "reproduce_paper.md", text, summary)
    table = "\n".join(table_rows(rows, args.losses))
    tsne_files = [r["tsne_file"] for r in rows if "tsne_file" in r]
    if tsne_files:
        plot_tsne_grid(
            out,
            tsne_files,
            [LOSS_TITLES[r["loss"]] for r in rows if "tsne_file" in r],
            out / "tsne_test.png",
            args.dataset,
        )
    print(table)
    print(f"\nReproduce with: {command}")
    print(f"Wall time of this invocation: {wall / 60:.1f} min; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
