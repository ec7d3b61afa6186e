"""`corel-sweep`: tune a loss's lambda on the validation split, as the paper did.

Each lambda is trained with the same config and seeds; its score is the best validation
accuracy over the epochs (the epoch the protocol would keep). The test split is never
loaded into the decision: a lambda chosen on test items would overstate the test result.

Example: corel-sweep --loss gaussian --dataset digits --lams 0.25,0.5,0.85 --epochs 10
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from training.config import DEFAULT_FASHION_MNIST_DIR, TrainConfig

log = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

# Losses with a lambda to tune, and the grids we search by default: the COREL losses weigh
# attraction against repulsion in [0, 1]; center loss's weight is unbounded, so a log grid.
DEFAULT_GRIDS = {
    "cosine": [0.05, 0.15, 0.25, 0.35, 0.5, 0.65, 0.75, 0.85, 0.95],
    "gaussian": [0.05, 0.15, 0.25, 0.35, 0.5, 0.65, 0.75, 0.85, 0.95],
    "center": [0.01, 0.03, 0.1, 0.35, 1.0, 3.0],
}


@dataclass
class SweepPoint:
    lam: float
    val_accuracies: list[float]  # best validation accuracy, one per seed
    best_epochs: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.val_accuracies))

    @property
    def std(self) -> float:
        values = self.val_accuracies
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def sweep(
    base: TrainConfig, lams: list[float], seeds: list[int], progress: bool = False
) -> list[SweepPoint]:
    """Train `base` once per (lambda, seed); return the validation scores per lambda."""
    from training.data import load_dataset
    from training.train import train

    points = []
    datasets = {
        seed: load_dataset(base.dataset, data_dir=base.data_dir, val_size=base.val_size, seed=seed)
        for seed in seeds
    }
    for lam in lams:
        accuracies, epochs = [], []
        for seed in seeds:
            config = TrainConfig.from_dict({**base.to_dict(), "lam": lam, "seed": seed})
            result = train(config, datasets[seed], progress=progress)
            accuracies.append(result.best_val_accuracy)
            epochs.append(result.best_epoch)
            log.info(
                "lam %g seed %d: best val acc %.4f at epoch %d",
                lam,
                seed,
                result.best_val_accuracy,
                result.best_epoch,
            )
        points.append(SweepPoint(lam, accuracies, epochs))
    return points


def best_point(points: list[SweepPoint]) -> SweepPoint:
    # ties go to the smaller lambda: the grid is sorted and max keeps the first
    return max(sorted(points, key=lambda p: p.lam), key=lambda p: p.mean)


def format_table(loss: str, points: list[SweepPoint]) -> str:
    best = best_point(points)
    lines = [f"| {loss} λ | val acc (mean ± std) | per seed | best epochs |", "|---|---|---|---|"]
    for p in sorted(points, key=lambda p: p.lam):
        mark = " **best**" if p is best else ""
        per_seed = ", ".join(f"{a:.4f}" for a in p.val_accuracies)
        lines.append(
            f"| {p.lam:g}{mark} | {p.mean:.4f} ± {p.std:.4f} | {per_seed} | "
            f"{', '.join(map(str, p.best_epochs))} |"
        )
    return "\n".join(lines)


def plot_sweep(loss: str, points: list[SweepPoint], path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(points, key=lambda p: p.lam)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.errorbar(
        [p.lam for p in ordered],
        [p.mean for p in ordered],
        yerr=[p.std for p in ordered],
        marker="o",
        capsize=3,
    )
    if loss == "center":
        ax.set_xscale("log")
    ax.set(xlabel="λ", ylabel="best validation accuracy", title=f"{loss} on {dataset}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parse_floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from exc


@app.command()
def main(
    loss: Annotated[str, typer.Option(help="cosine, gaussian or center.")] = "cosine",
    lams: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated lambdas (default: a grid over [0.05, 0.95], or a log grid "
            "for center)."
        ),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="fashion-mnist, digits or a path (folder, .npz, .csv).")
    ] = "fashion-mnist",
    data_dir: Annotated[
        str, typer.Option(envvar="COREL_FASHION_MNIST_DIR")
    ] = DEFAULT_FASHION_MNIST_DIR,
    epochs: Annotated[int, typer.Option(help="Epochs per training run.")] = 10,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; each lambda runs all.")] = "0",
    max_train: Annotated[
        int | None, typer.Option(help="Train on a subset to sweep faster.")
    ] = None,
    val_size: Annotated[int | None, typer.Option(help="Validation items.")] = None,
    encoder: Annotated[str, typer.Option(help="auto, cnn or ffnn.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of validation accuracy against lambda here.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
    quiet: Annotated[bool, typer.Option(help="No per-run logs or progress bars.")] = False,
) -> None:
    """Sweep lambda for one loss on the validation split; print a table and the best."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from training.data import DatasetError

    if loss not in DEFAULT_GRIDS:
        typer.echo(
            f"error: {loss!r} has no lambda to sweep; choose one of {', '.join(DEFAULT_GRIDS)}",
            err=True,
        )
        raise typer.Exit(2)
    grid = _parse_floats(lams) if lams else DEFAULT_GRIDS[loss]
    seed_list = [int(s) for s in _parse_floats(seeds)]
    try:
        base = TrainConfig(
            dataset=dataset,
            data_dir=data_dir,
            loss=loss,
            epochs=epochs,
            max_train=max_train,
            val_size=val_size,
            encoder=encoder,
            threads=threads,
        )
        for lam in grid:  # validate every lambda before hours of training
            TrainConfig.from_dict({**base.to_dict(), "lam": lam})
        points = sweep(base, grid, seed_list, progress=not quiet)
    except (ValueError, DatasetError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    best = best_point(points)
    typer.echo(format_table(loss, points))
    typer.echo(
        f"\nbest lambda for {loss} on {dataset} (validation): {best.lam:g} "
        f"(val acc {best.mean:.4f})"
    )
    if plot is not None:
        plot_sweep(loss, points, plot, dataset)
    if out is not None:
        out.write_text(
            json.dumps(
                {
                    "loss": loss,
                    "dataset": dataset,
                    "epochs": epochs,
                    "seeds": seed_list,
                    "split": "validation",
                    "best_lam": best.lam,
                    "points": [
                        {
                            "lam": p.lam,
                            "val_accuracies": p.val_accuracies,
                            "best_epochs": p.best_epochs,
                            "mean": p.mean,
                            "std": p.std,
                        }
                        for p in points
                    ],
                },
                indent=2,
            )
            + "\n"
        )
