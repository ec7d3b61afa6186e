"""`corel-sweep`: tune a loss's lambda on the validation split, as the paper did.

Each lambda is trained with the same config and seeds; its score is the best validation
accuracy over the epochs (the epoch the protocol would keep). The test split is never
loaded into the decision: a lambda chosen on test items would overstate the test result.
The config comes from the same options and presets as `corel-train`'s, less `--lam` and
`--seed`, which `--lams` and `--seeds` replace.

Example: corel-sweep --loss gaussian --dataset digits --lams 0.25,0.5,0.85 --epochs 10
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click
import numpy as np

from corel.logs import setup_logging
from training.config import TrainConfig
from training.options import CONTEXT, config_options

log = logging.getLogger(__name__)

# Losses with a lambda to tune, and the grids we search by default: the COREL losses weigh
# attraction against repulsion in [0, 1]; center loss's weight is unbounded, so a log grid.
DEFAULT_GRIDS: dict[str, list[float]] = {
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

    points: list[SweepPoint] = []
    datasets = {
        seed: load_dataset(
            base.dataset,
            data_dir=base.data_dir,
            val_size=base.val_size,
            seed=seed,
            max_length=base.max_length,
            vocab_size=base.vocab_size,
        )
        for seed in seeds
    }
    for lam in lams:
        accuracies: list[float] = []
        epochs: list[int] = []
        for seed in seeds:
            config = replace(base, lam=lam, seed=seed)
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
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from exc


@click.command(context_settings=CONTEXT)
@click.option(
    "--lams",
    help="Comma-separated lambdas (default: a grid over [0.05, 0.95], or a log grid for center).",
)
@click.option(
    "--seeds", default="0", show_default=True, help="Comma-separated seeds; each lambda runs all."
)
@config_options(exclude=("lam", "seed"), defaults={"epochs": 10})
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of validation accuracy against lambda here.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the results as JSON here."
)
@click.option("--quiet", is_flag=True, help="No per-run logs or progress bars.")
def app(
    lams: str | None,
    seeds: str,
    config: TrainConfig,
    plot: Path | None,
    out: Path | None,
    quiet: bool,
) -> None:
    """Sweep lambda for one loss (cosine, gaussian or center) on the validation split;
    print a table and the best lambda.

    \b
    Example:
      corel-sweep --loss gaussian --dataset digits --lams 0.25,0.5,0.85 --epochs 10
    """
    setup_logging(logging.WARNING if quiet else logging.INFO)
    from training.data import DatasetError

    if config.loss not in DEFAULT_GRIDS:
        raise click.UsageError(
            f"{config.loss!r} has no lambda to sweep; choose one of {', '.join(DEFAULT_GRIDS)}"
        )
    grid = _parse_floats(lams) if lams else DEFAULT_GRIDS[config.loss]
    seed_list = [int(s) for s in _parse_floats(seeds)]
    try:
        for lam in grid:  # validate every lambda before hours of training
            replace(config, lam=lam)
        points = sweep(config, grid, seed_list, progress=not quiet)
    except (ValueError, DatasetError) as exc:
        raise click.UsageError(str(exc)) from exc
    best = best_point(points)
    click.echo(format_table(config.loss, points))
    click.echo(
        f"\nbest lambda for {config.loss} on {config.dataset} (validation): {best.lam:g} "
        f"(val acc {best.mean:.4f})"
    )
    if plot is not None:
        plot_sweep(config.loss, points, plot, config.dataset)
    if out is not None:
        report = {
            "loss": config.loss,
            "dataset": config.dataset,
            "epochs": config.epochs,
            "seeds": seed_list,
            "split": "validation",
            "best_lam": best.lam,
            "points": [{**asdict(p), "mean": p.mean, "std": p.std} for p in points],
        }
        out.write_text(json.dumps(report, indent=2) + "\n")
