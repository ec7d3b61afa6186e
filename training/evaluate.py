"""Evaluate a latent space on a test set and write `metrics.json` and `report.md` with plots.

Everything here runs from an ONNX encoder and numpy arrays, so `corel-eval` can score any
bundle with onnxruntime alone, exactly as the service will see it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from corel.bundle import Bundle
from corel.class_rule import l2_normalise, rule_for
from corel.clustering import LatentSpaceScores, evaluate_latent_space
from training.results import EpochRow, Evaluation

PLOT_POINTS = 2000  # t-SNE is quadratic; a seeded sample of the test set is plotted


class OnnxEncoder:
    """One onnxruntime session over an exported encoder, shared by every check that runs it
    (a session costs a graph load and optimisation)."""

    def __init__(self, onnx_path: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(
        self, model_input: np.ndarray, batch_size: int = 512, *, output: str = "embedding"
    ) -> np.ndarray:
        """One output (`embedding` (N, D) or `features` (N, F)) of every row, float32."""
        out = [
            self.session.run([output], {"input": model_input[i : i + batch_size]})[0]
            for i in range(0, len(model_input), batch_size)
        ]
        return np.concatenate(out).astype(np.float32)


def onnx_embed(
    onnx_path: Path, model_input: np.ndarray, batch_size: int = 512, *, output: str = "embedding"
) -> np.ndarray:
    """One output of an encoder file, with a session of its own (`OnnxEncoder` for several)."""
    return OnnxEncoder(onnx_path).run(model_input, batch_size, output=output)


def evaluate_embeddings(
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_vectors: np.ndarray,
    rule: str,
    class_bias: np.ndarray | None = None,
    *,
    seed: int = 0,
) -> Evaluation:
    """Accuracy by the class rule, then clustering quality on normalised and raw embeddings."""
    predicted = rule_for(rule).scores(embeddings, class_vectors, class_bias).argmax(1)
    return Evaluation(
        n=len(labels),
        accuracy=float((predicted == labels).mean()),
        l2_normalised=evaluate_latent_space(embeddings, labels, normalise=True, seed=seed),
        raw=evaluate_latent_space(embeddings, labels, normalise=False, seed=seed),
    )


def evaluate_bundle(
    bundle: Bundle, x_raw: np.ndarray | Sequence[str], labels: np.ndarray, *, seed: int = 0
) -> tuple[Evaluation, np.ndarray]:
    """Score raw inputs (pixels, features; for a text bundle, strings) as the service would:
    through the manifest's input rule or the bundle's own tokenizer, then the ONNX graph."""
    if bundle.manifest.input.kind == "text":
        model_input = bundle.tokenizer().encode([str(t) for t in x_raw]).ids
    else:
        model_input = bundle.manifest.input.to_model(np.asarray(x_raw))
    embeddings = onnx_embed(bundle.encoder_path, model_input)
    evaluation = evaluate_embeddings(
        embeddings,
        labels,
        bundle.class_vectors,
        bundle.manifest.class_rule,
        bundle.class_bias,
        seed=seed,
    )
    return evaluation, embeddings


# -- report ---------------------------------------------------------------------------------


def plot_training_curves(history: list[EpochRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row.epoch for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [row.train_loss for row in history], marker=".")
    ax_loss.set(title="training loss", xlabel="epoch")
    ax_acc.plot(epochs, [row.train_accuracy for row in history], marker=".", label="train")
    ax_acc.plot(epochs, [row.val_accuracy for row in history], marker=".", label="validation")
    ax_acc.set(title="accuracy by class rule", xlabel="epoch")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def project_2d(embeddings: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """PCA and t-SNE (cosine) of L2-normalised embeddings, for plotting."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = l2_normalise(embeddings)
    return {
        "PCA": PCA(n_components=2, random_state=seed).fit_transform(x),
        "t-SNE": TSNE(
            n_components=2,
            metric="cosine",
            init="pca",
            random_state=seed,
            perplexity=min(30.0, (len(x) - 1) / 3),
        ).fit_transform(x),
    }


def plot_projections(
    embeddings: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    path: Path,
    title: str = "",
    seed: int = 0,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(labels), size=min(PLOT_POINTS, len(labels)), replace=False)
    projections = project_2d(embeddings[sample], seed)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    for ax, (method, points) in zip(axes, projections.items(), strict=True):
        for k, name in enumerate(names):
            members = labels[sample] == k
            ax.scatter(points[members, 0], points[members, 1], s=4, label=name, alpha=0.7)
        ax.set(title=f"{method} of L2-normalised test embeddings", xticks=[], yticks=[])
    axes[1].legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out_dir: Path,
    *,
    title: str,
    evaluation: Evaluation,
    history: list[EpochRow] | None,
    embeddings: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    plots: bool = True,
) -> list[str]:
    """Write metrics.json, report.md and (with `plots`) its figures into out_dir; returns the
    file names. The t-SNE of the projections is the slow part: seconds per thousand items."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(evaluation.to_json(), indent=2) + "\n")
    files = ["metrics.json", "report.md"]
    if plots:
        plot_projections(embeddings, labels, names, out_dir / "projections.png", title)
        files.append("projections.png")
    if plots and history:
        plot_training_curves(history, out_dir / "training_curves.png")
        files.append("training_curves.png")

    def row(m: LatentSpaceScores) -> str:
        gmm = (
            "– | – | –"
            if m.gmm is None
            else f"{m.gmm.accuracy:.4f} | {m.gmm.ari:.4f} | {m.gmm.v_measure:.4f}"
        )
        return (
            f"| {m.geometry} | {m.kmeans.accuracy:.4f} | {m.kmeans.ari:.4f} | "
            f"{m.kmeans.v_measure:.4f} | {gmm} | "
            f"{m.silhouette_kmeans:.4f} | {m.silhouette_labels:.4f} |"
        )

    lines = [
        f"# {title}",
        "",
        f"Test items: {evaluation.n}. Accuracy by nearest class vector (the bundle's class "
        f"rule): **{evaluation.accuracy:.4f}**.",
        "",
        "Clustering with K = number of classes; accuracy after Hungarian matching; silhouette "
        'with cosine distance against the K-Means clusters (the paper\'s "K-Means density") '
        "and against the true labels.",
        "",
        "| embeddings | K-Means acc | K-Means ARI | K-Means V | GMM acc | GMM ARI | GMM V | "
        "silhouette (K-Means) | silhouette (labels) |",
        "|---|---|---|---|---|---|---|---|---|",
        row(evaluation.l2_normalised),
    ]
    if evaluation.raw is not None:
        lines.append(row(evaluation.raw))
    lines.append("")
    if "projections.png" in files:
        lines += ["![projections](projections.png)", ""]
    if history:
        lines += ["## Training", ""]
        if "training_curves.png" in files:
            lines += ["![training curves](training_curves.png)", ""]
        lines += ["| epoch | loss | train acc | val acc | seconds |", "|---|---|---|---|---|"]
        lines += [
            f"| {r.epoch} | {r.train_loss:.4f} | {r.train_accuracy:.4f} | "
            f"{r.val_accuracy:.4f} | {r.seconds:.1f} |"
            for r in history
        ]
        lines.append("")
    (out_dir / "report.md").write_text("\n".join(lines))
    return files
