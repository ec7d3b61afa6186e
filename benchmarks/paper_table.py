"""The table and figure of `reproduce_paper.py`: mean ± std over seeds beside the poster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LOSS_TITLES = {
    "cce": "CCE",
    "center": "Center loss",
    "gaussian": "Gaussian-COREL",
    "cosine": "Cosine-COREL",
    "contrastive": "Siamese (contrastive)",
}

# The poster's Fashion-MNIST CNN test results: prediction acc, K-Means acc, K-Means density
# (silhouette against the K-Means clusters). The poster has no center loss or Siamese row.
POSTER = {
    "cce": (0.9124, 0.7246, 0.2808),
    "cosine": (0.9092, 0.9072, 0.8473),
    "gaussian": (0.9164, 0.9127, 0.7382),
}

# (headline key, column title); all but the raw K-Means column use L2-normalised embeddings
COLUMNS = (
    ("accuracy", "test acc"),
    ("kmeans_accuracy", "K-Means acc"),
    ("gmm_accuracy", "GMM acc"),
    ("ari", "ARI"),
    ("v_measure", "V-measure"),
    ("silhouette", "silhouette"),
    ("kmeans_accuracy_raw", "K-Means acc (raw)"),
)


def mean_std(values: list[float]) -> str:
    # sample standard deviation (ddof=1): the spread a new seed would show
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.4f} ± {std:.4f}"


def table_rows(rows: list[dict[str, Any]], losses: list[str]) -> list[str]:
    header = (
        "| loss | λ | "
        + " | ".join(title for _, title in COLUMNS)
        + " | paper acc | paper K-Means acc | paper density | best epoch | seeds |"
    )
    lines = [header, "|" + "---|" * (len(COLUMNS) + 7)]
    for loss in losses:
        runs = [r for r in rows if r["loss"] == loss]
        if not runs:
            continue
        lam = runs[0]["lam"]
        cells = [mean_std([r["headline"][key] for r in runs]) for key, _ in COLUMNS]
        paper = [f"{v:.4f}" for v in POSTER[loss]] if loss in POSTER else ["–"] * 3
        epochs = ", ".join(str(r["best_epoch"]) for r in runs)
        lines.append(
            f"| {LOSS_TITLES[loss]} | {'–' if lam is None else lam} | "
            + " | ".join(cells + paper)
            + f" | {epochs} | {len(runs)} |"
        )
    return lines


def report(rows: list[dict[str, Any]], summary: dict[str, Any], losses: list[str]) -> str:
    """The results file's body (the header goes above it): the protocol, the table, what
    is missing, and the wall time."""
    minutes = summary["wall_seconds_since_first_start"] / 60
    return "\n".join(
        [
            f"{len(rows)} runs: {summary['epochs']} epochs each, seeds {summary['seeds']}, "
            "Adam lr 1e-3, batch 128, constant LR, no augmentation, test metrics at the epoch of "
            "best validation accuracy. Mean ± sample std over seeds. Clustering columns use the "
            "L2-normalised test embeddings (K = number of classes, accuracy after Hungarian "
            "matching); silhouette is cosine, against the K-Means clusters (the poster's "
            '"K-Means density"); the last of our columns clusters the raw embeddings. '
            "Paper columns: the poster's Fashion-MNIST CNN results (150 epochs).",
            "",
            *table_rows(rows, losses),
            "",
            *(
                [
                    f"**Partial:** {len(summary['missing_runs'])} planned runs had not finished: "
                    + ", ".join(summary["missing_runs"])
                    + ".",
                    "",
                ]
                if summary.get("missing_runs")
                else []
            ),
            f"Wall time from the first start to this table (resumed runs included): {minutes:.1f} "
            f"min on {summary['cpu_count']} CPU "
            f"cores ({summary['workers']} runs in parallel x {summary['threads_per_worker']} "
            f"torch threads); sum of per-run training time {summary['train_seconds_sum'] / 60:.1f} "
            "min. Finished " + summary["finished"] + ".",
        ]
    )


def plot_tsne_grid(
    results_dir: Path, files: list[str], titles: list[str], path: Path, dataset: str
) -> None:
    """One panel per loss, side by side, coloured by true class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(files), figsize=(4.2 * len(files), 4.6), squeeze=False)
    names: list[str] = []
    for ax, file, title in zip(axes[0], files, titles, strict=True):
        with np.load(results_dir / file) as data:
            points, labels, names = data["points"], data["labels"], list(data["names"])
        for k, name in enumerate(names):
            members = labels == k
            ax.scatter(points[members, 0], points[members, 1], s=2, alpha=0.7, label=name)
        ax.set(title=title, xticks=[], yticks=[])
    axes[0][-1].legend(markerscale=5, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(f"t-SNE (cosine) of L2-normalised {dataset} test embeddings, seed 0")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
