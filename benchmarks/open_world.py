"""Open-world benchmark: does the model flag what it never saw, and learn new classes from a
few examples? Measured on classes the encoder never saw.

Protocol (fixed in advance, docs/open-world.md):
- three class splits of Fashion-MNIST, two classes held out in each (SPLITS below);
- per split, an encoder trained on the 8 seen classes with this project's trainer and the
  default bundle's recipe (Cosine-COREL, lambda 0.15, cosine schedule), fewer epochs;
- scores of "is this unknown?" are chosen on validation items only (drawn from the train
  file); every figure of the table is on the test file;
- far out-of-distribution sets built from the test images or from nothing: uniform and
  Gaussian noise, all-black, all-white, inverted items, scikit-learn's digits scaled to
  28x28, items rotated by 90 degrees.

Trained split encoders are cached under benchmarks/.cache/open_world, so a rerun only
evaluates.

    python benchmarks/open_world.py                 # the full run
    python benchmarks/open_world.py --quick         # 1 split, 1 epoch on 3,000 items
    python benchmarks/open_world.py --bundle models/fashion-mnist-cosine
                                                    # a bundle through the service's index
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from corel.bundle import InputSpec  # noqa: E402
from corel.logs import setup_logging  # noqa: E402
from harness import RESULTS  # noqa: E402
from harness.results import Provenance  # noqa: E402

log = logging.getLogger("open_world")

CACHE_DIR = ROOT / "benchmarks" / ".cache" / "open_world"
RESULTS_DIR = RESULTS

# Fixed before any result was seen: the pair, and two pairs that mix a garment
# with a shoe or an accessory.
SPLITS: dict[str, tuple[str, str]] = {
    "sandal-shirt": ("Sandal", "Shirt"),
    "pullover-boot": ("Pullover", "Ankle boot"),
    "trouser-bag": ("Trouser", "Bag"),
}


@dataclass(frozen=True)
class Protocol:
    epochs: int = 5
    max_train: int | None = None  # seen-class training items (None: all)
    splits: tuple[str, ...] = tuple(SPLITS)
    shots: tuple[int, ...] = (1, 5, 20)
    episodes: int = 5  # few-shot draws per k
    max_test: int | None = None  # test items per split (None: all 10,000)
    threads: int = 1
    bank_size: int = 2000  # training items whose features the kNN score compares with
    far_items: int = 500  # items per far set (all-black and all-white: one image each)
    cache_dir: Path = CACHE_DIR  # trained split encoders
    # TrainConfig fields set beside the default recipe, e.g. (("aux_loss", "instance"),):
    # the training objective of the split encoders (docs/open-world.md, "Other objectives")
    objective: tuple[tuple[str, object], ...] = ()

    def tag(self) -> str:
        """The objective in a file name: '' for the default recipe."""
        return "-".join(
            str(v) if k == "aux_loss" else k if v is True else f"{k.removeprefix('aux_')}{v}"
            for k, v in self.objective
        )


def seen_only(data, held_out: tuple[str, ...]):
    """The dataset restricted to the seen classes, relabelled 0..7 in the original order."""
    from training.data import Dataset

    seen = [k for k, name in enumerate(data.labels) if name not in held_out]
    remap = np.full(len(data.labels), -1, np.int64)
    remap[seen] = np.arange(len(seen))

    def keep(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = remap[y] >= 0
        return x[mask], remap[y[mask]]

    x_train, y_train = keep(data.x_train, data.y_train)
    x_val, y_val = keep(data.x_val, data.y_val)
    x_test, y_test = keep(data.x_test, data.y_test)
    fields = {k: v for k, v in vars(data).items() if not k.startswith(("x_", "y_"))}
    fields["labels"] = [data.labels[k] for k in seen]
    return Dataset(
        **fields,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
    )


def split_config(protocol: Protocol):
    from training.config import TrainConfig, load_preset

    preset = load_preset("fashion-mnist-cosine")
    config = TrainConfig.from_dict(preset)
    return replace(
        config,
        epochs=protocol.epochs,
        max_train=protocol.max_train,
        threads=protocol.threads,
        **dict(protocol.objective),
    )


def cache_key(split: str, config) -> str:
    """The split's trained encoder is cached under this: the split and the config, less the
    auxiliary objective's fields at their defaults, so that encoders cached before those fields
    existed (the default objective) stay valid and any other objective gets its own."""
    from training.config import TrainConfig

    default = TrainConfig()
    values = {
        k: v
        for k, v in config.to_dict().items()
        if not (k.startswith("aux_") and v == getattr(default, k))
    }
    return hashlib.sha256(json.dumps([split, values], sort_keys=True).encode()).hexdigest()[:10]


def trained_split(split: str, protocol: Protocol, data):
    """(encoder, class vectors (8, D)) of the split, from the cache or trained now."""
    import torch

    from training.encoders import build_encoder
    from training.losses import build_loss
    from training.train import train

    config = split_config(protocol)
    path = protocol.cache_dir / f"{split}-e{config.epochs}-{cache_key(split, config)}.pt"
    seen = seen_only(data, SPLITS[split])
    if path.is_file():
        state = torch.load(path, weights_only=True)
        encoder = build_encoder(
            config.encoder,
            seen.kind,
            seen.shape,
            config.embedding_dim,
            config.leaky_slope,
            config.final_activation,
        )
        encoder.load_state_dict(state["encoder"])
        loss = build_loss(config.loss, len(seen.labels), config.embedding_dim, lam=config.lam)
        loss.load_state_dict(state["loss"])
        return encoder.eval(), loss.weight.detach().numpy(), state["meta"]
    torch.set_num_threads(config.threads or 1)
    log.info("training %s: %d epochs on %d items", split, config.epochs, len(seen.x_train))
    result = train(config, seen, progress=False)
    meta = {
        "split": split,
        "held_out": list(SPLITS[split]),
        "config": config.to_dict(),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "seconds": round(result.seconds, 1),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"encoder": result.encoder.state_dict(), "loss": result.loss.state_dict(), "meta": meta},
        path,
    )
    return result.encoder.eval(), result.loss.weight.detach().numpy(), meta


# -- inputs --------------------------------------------------------------------------------


def resize_digits(images: np.ndarray) -> np.ndarray:
    """scikit-learn's 8x8 digits (0..16) as 28x28 images in 0..255, bilinear."""
    from PIL import Image

    out = [
        np.asarray(
            Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR),
            np.float32,
        )
        for img in images
    ]
    return np.stack(out)[:, None]


def far_sets(
    seen_items: np.ndarray, digits: np.ndarray, seed: int, n: int = 500
) -> dict[str, np.ndarray]:
    """The far out-of-distribution sets, raw pixels (N, 1, 28, 28) in 0..255."""
    rng = np.random.default_rng(seed)
    shape = (n, 1, 28, 28)
    items = seen_items[rng.choice(len(seen_items), size=min(n, len(seen_items)), replace=False)]
    return {
        "uniform noise": rng.uniform(0, 255, shape).astype(np.float32),
        "gaussian noise": np.clip(rng.normal(127.5, 50, shape), 0, 255).astype(np.float32),
        "all black": np.zeros((1, 1, 28, 28), np.float32),
        "all white": np.full((1, 1, 28, 28), 255, np.float32),
        "inverted": 255 - items,
        "digits 28x28": digits,
        "rotated 90": np.rot90(items, 1, axes=(2, 3)).copy(),
    }


# -- features and scores ----------------------------------------------------------------------

LAYERS = ("conv", "f1", "h")  # flattened convolutions (540), first dense layer (128), h (128)


def layer_features(encoder, model_input: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer's features of a PaperCNN: its head is (Flatten, Linear, act, Linear, act)."""
    import torch

    out: dict[str, list[np.ndarray]] = {name: [] for name in LAYERS}
    with torch.no_grad():
        for start in range(0, len(model_input), 1024):
            conv = encoder.head[0](
                encoder.features(torch.from_numpy(model_input[start : start + 1024]))
            )
            f1 = encoder.head[2](encoder.head[1](conv))
            h = encoder.head[4](encoder.head[3](f1))
            for name, value in zip(LAYERS, (conv, f1, h), strict=True):
                out[name].append(value.numpy())
    return {name: np.concatenate(chunks) for name, chunks in out.items()}


@dataclass
class Reference:
    """What the scores know of the training data: banks, class means, covariances, a guard."""

    w: np.ndarray  # (K, D) class vectors
    bank: dict[str, np.ndarray]  # layer -> (M, F) training features
    bank_y: np.ndarray  # (M,) their classes
    means: dict[str, np.ndarray]  # layer -> (K, F)
    precision: dict[str, np.ndarray]  # layer -> (F, F) inverse of the shared covariance
    guard: object


def fit_reference(encoder, seen, w: np.ndarray, bank_size: int = 5000) -> Reference:
    from corel.class_rule import l2_normalise
    from corel.open_set import InputGuard

    rng = np.random.default_rng(0)
    pick = rng.choice(len(seen.x_train), size=min(bank_size, len(seen.x_train)), replace=False)
    feats = layer_features(encoder, seen.model_input(seen.x_train[pick]))
    y = seen.y_train[pick]
    means, precision = {}, {}
    for layer in LAYERS:
        x = l2_normalise(feats[layer])
        mu = np.stack([x[y == c].mean(0) for c in range(len(seen.labels))])
        means[layer] = mu
        if layer != "conv":
            centred = x - mu[y]
            cov = centred.T @ centred / len(x) + 1e-4 * np.eye(x.shape[1])
            precision[layer] = np.linalg.inv(cov).astype(np.float32)
    # as the shipped bundle's (training/open_set.py): a PCA of up to 10,000 training inputs
    guard_pick = rng.choice(len(seen.x_train), size=min(10_000, len(seen.x_train)), replace=False)
    guard = InputGuard.fit(seen.model_input(seen.x_train[guard_pick]))
    return Reference(w, feats, y, means, precision, guard)


def candidate_scores(
    ref: Reference, feats: dict[str, np.ndarray], model_input: np.ndarray
) -> dict[str, np.ndarray]:
    """Every candidate "like the training data" score (higher = more in-distribution)."""
    from corel.class_rule import l2_normalise
    from corel.open_set import knn_similarity

    cos = l2_normalise(feats["h"]) @ l2_normalise(ref.w).T
    top2 = -np.sort(-cos, axis=1)[:, :2]
    scores = {
        "_predicted": cos.argmax(1),
        "max cosine": top2[:, 0],
        "margin": top2[:, 0] - top2[:, 1],
        "norm of h": np.linalg.norm(feats["h"], axis=1),
        "input guard (PCA)": ref.guard.scores(model_input),
    }
    for layer in LAYERS:
        for k in (1, 10, 50):
            scores[f"kNN k={k} {layer}"] = knn_similarity(feats[layer], ref.bank[layer], k)
    for layer in ("f1", "h"):
        x = l2_normalise(feats[layer])
        d = np.stack(
            [
                np.einsum("nf,fg,ng->n", x - m, ref.precision[layer], x - m)
                for m in ref.means[layer]
            ],
            1,
        )
        scores[f"Mahalanobis {layer}"] = -d.min(1)
    return scores


def auroc_fpr(inside: np.ndarray, outside: np.ndarray) -> tuple[float, float]:
    """AUROC of telling inside (positives) from outside by score, and the FPR at 95% TPR."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(inside)), np.zeros(len(outside))]
    auroc = float(roc_auc_score(labels, np.r_[inside, outside]))
    threshold = np.quantile(inside, 0.05)
    return auroc, float((outside >= threshold).mean())


def fuse(parts: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> np.ndarray:
    """Min over parts of each score's rank among in-distribution validation items (a p-value):
    an input is as unusual as its most unusual score."""
    ranks = [
        np.searchsorted(np.sort(reference[name]), value) / len(reference[name])
        for name, value in parts.items()
    ]
    return np.min(ranks, axis=0)


# -- one split ------------------------------------------------------------------------------

FEW_SHOT_LAYER = "conv"
FEW_SHOT_CAPTURES = (0.005, 0.01, 0.02)  # share of known items a new class may take; chosen on val
ACCEPT = 0.95  # each class's own items accepted at the operating point
GUARD_ACCEPT = 0.995  # inputs the input guard accepts among validation items


def fused_candidates(
    scores: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    guard = "input guard (PCA)"
    out = {}
    for name in ("max cosine", "kNN k=1 conv", "kNN k=10 conv", "Mahalanobis f1"):
        parts = {guard: scores[guard], name: scores[name]}
        out[f"guard + {name}"] = fuse(parts, reference)
    parts = {n: scores[n] for n in (guard, "kNN k=10 conv", "max cosine")}
    out["guard + kNN k=10 conv + max cosine"] = fuse(parts, reference)
    return out


def all_scores(
    ref: Reference,
    encoder,
    x_raw: np.ndarray,
    spec: InputSpec,
    reference: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every candidate score of raw images; fused ones rank against `reference` (the
    validation items' scores), or against these items themselves when it is None."""
    model_input = spec.to_model(x_raw)
    scores = candidate_scores(ref, layer_features(encoder, model_input), model_input)
    scores.update(fused_candidates(scores, reference if reference is not None else scores))
    return scores


@dataclass
class Part:
    """The scores of one part of the data (validation or test) of a split."""

    inside: dict[str, np.ndarray]  # scores of the seen classes' items
    outside: dict[str, dict[str, np.ndarray]]  # set name -> scores of its items
    y_inside: np.ndarray  # the seen items' classes, 0..7
    x: np.ndarray  # every item of the part, seen and held-out classes, raw
    y: np.ndarray  # their classes, 0..9


def open_set_table(
    inside: dict[str, np.ndarray], outside: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, tuple[float, float]]]:
    """{score: {set: (AUROC, FPR at 95% TPR)}}."""
    return {
        name: {
            set_name: auroc_fpr(inside[name], scores[name]) for set_name, scores in outside.items()
        }
        for name in inside
        if not name.startswith("_")
    }


def evaluate_split(split: str, protocol: Protocol, data, digits: np.ndarray) -> dict:

    encoder, w, meta = trained_split(split, protocol, data)
    seen = seen_only(data, SPLITS[split])
    ref = fit_reference(encoder, seen, w, protocol.bank_size)
    held = [data.labels.index(n) for n in SPLITS[split]]
    rng = np.random.default_rng(1)
    x_test, y_test = data.x_test, data.y_test
    if protocol.max_test is not None:
        pick = rng.choice(len(x_test), size=protocol.max_test, replace=False)
        x_test, y_test = x_test[pick], y_test[pick]
    n_far = protocol.far_items
    sources = {  # items, labels, digits, noise seed
        "val": (data.x_val, data.y_val, digits[0::2], 10),
        "test": (x_test, y_test, digits[1::2], 20),
    }
    result: dict = {"split": split, "held_out": list(SPLITS[split]), "training": meta}
    parts: dict[str, Part] = {}
    for part, (x, y, dig, seed) in sources.items():
        unseen = np.isin(y, held)
        # fused scores rank against the validation items, on both parts
        val_inside = parts["val"].inside if "val" in parts else None
        inside = all_scores(ref, encoder, x[~unseen], data.input, val_inside)
        reference = val_inside if val_inside is not None else inside
        sets = {"held-out classes": x[unseen], **far_sets(x[~unseen], dig, seed, n_far)}
        outside = {
            name: all_scores(ref, encoder, xs, data.input, reference) for name, xs in sets.items()
        }
        result[part] = open_set_table(inside, outside)
        parts[part] = Part(inside, outside, y_in_seen(y[~unseen], held), x, y)
    result["operating_point"] = {
        knn: operating_point(parts["val"], parts["test"], knn)
        for knn in ("kNN k=1 conv", "kNN k=10 conv")
    }

    result["few_shot"] = {}
    for part in ("val", "test"):
        closed_acc, few = few_shot(
            encoder, w, ref, data, held, parts[part].x, parts[part].y, protocol, rng
        )
        result["few_shot"][part] = few
        result["closed_set_accuracy" if part == "test" else "val_closed"] = closed_acc
    h = layer_features(encoder, seen.model_input(seen.x_test))["h"]
    result["clustering"] = split_clustering(h, seen.y_test)
    return result


def split_clustering(h: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The default bundle's clustering figures, measured on a split encoder: K-Means (K = 8)
    on the L2-normalised h of the seen classes' test items, its accuracy after Hungarian
    matching, and the cosine silhouettes of its clusters (the paper's) and of the classes."""
    from corel.clustering import evaluate_latent_space

    scores = evaluate_latent_space(h, labels, normalise=True, with_gmm=False)
    return {
        "kmeans_accuracy": scores.kmeans.accuracy,
        "silhouette_kmeans": scores.silhouette_kmeans,
        "silhouette_labels": scores.silhouette_labels,
    }


def few_shot(encoder, w, ref, data, held, x_all, y_all, protocol, rng):
    """Imprint the held-out classes from k train-file items each (never seen in training),
    then classify x_all among all 10 classes: (closed-set accuracy of the known classes
    before, {method: {k: {"new": accuracy on held-out items, "seen": on known items}}})."""
    from corel.class_rule import l2_normalise
    from corel.open_set import advantage, centred, imprint_prototype

    remap = np.full(10, -1)
    remap[[k for k in range(10) if k not in held]] = np.arange(8)
    remap[held] = [8, 9]
    feats = layer_features(encoder, data.model_input(x_all))
    y_new = remap[y_all]
    known = y_new < 8
    h = l2_normalise(feats["h"])
    cos_h = h @ l2_normalise(w).T
    closed = cos_h.argmax(1)
    centre = ref.bank[FEW_SHOT_LAYER].mean(0)
    bank = centred(ref.bank[FEW_SHOT_LAYER], centre)
    known_means = l2_normalise(np.stack([bank[ref.bank_y == c].mean(0) for c in range(8)]))
    queries = centred(feats[FEW_SHOT_LAYER], centre)
    pools = {
        c: layer_features(encoder, data.model_input(data.x_train[data.y_train == c][:1000]))
        for c in held
    }
    few: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for k in protocol.shots:
        for _ in range(protocol.episodes):
            picks = {c: rng.choice(len(pools[c]["h"]), size=k, replace=False) for c in held}
            ex_h = [l2_normalise(pools[c]["h"][picks[c]]) for c in held]
            means = l2_normalise(np.stack([e.mean(0) for e in ex_h]))
            nearest = np.stack([(h @ e.T).max(1) for e in ex_h], 1)
            predictions = {
                "mean prototype on h (today)": np.hstack([cos_h, h @ means.T]).argmax(1),
                "nearest example on h": np.hstack([cos_h, nearest]).argmax(1),
            }
            for capture in (*FEW_SHOT_CAPTURES, 1.0):
                gate = []
                for c in held:
                    examples = centred(pools[c][FEW_SHOT_LAYER][picks[c]], centre)
                    prototype, bar = imprint_prototype(examples, known_means, bank, capture)
                    gate.append(advantage(queries, prototype, known_means) - bar)
                best = np.stack(gate, 1)
                label = "centred conv prototype, gated, " + (
                    f"capture {capture}" if capture < 1 else "no cap"
                )
                predictions[label] = np.where(best.max(1) > 0, 8 + best.argmax(1), closed)
            for name, pred in predictions.items():
                few.setdefault(name, {}).setdefault(k, []).append(
                    (
                        float((pred[~known] == y_new[~known]).mean()),
                        float((pred[known] == y_new[known]).mean()),
                    )
                )
    summary = {
        name: {
            str(k): {
                "new": float(np.mean([r[0] for r in runs])),
                "seen": float(np.mean([r[1] for r in runs])),
            }
            for k, runs in by_k.items()
        }
        for name, by_k in few.items()
    }
    return float((closed[known] == y_new[known]).mean()), summary


def operating_point(val: Part, test: Part, knn_name: str) -> dict:
    """The service's rule on test with thresholds from validation: unknown when the input guard
    fails (outside the data), or the kNN score or the best cosine falls below the predicted
    class's threshold; each class threshold accepts sqrt(ACCEPT) of the class's correctly
    predicted validation items, so that about ACCEPT pass both."""
    from corel.open_set import quantile_threshold

    guard_name = "input guard (PCA)"
    per_check = float(np.sqrt(ACCEPT))
    predicted = val.inside["_predicted"]
    guard_t = quantile_threshold(val.inside[guard_name], GUARD_ACCEPT)
    thresholds = {}
    for c in range(8):
        own = (val.y_inside == c) & (predicted == c)
        thresholds[c] = (
            quantile_threshold(val.inside[knn_name][own], per_check),
            quantile_threshold(val.inside["max cosine"][own], per_check),
        )

    def flagged(scores: dict[str, np.ndarray], pred: np.ndarray) -> np.ndarray:
        knn_t = np.array([thresholds[c][0] for c in pred])
        cos_t = np.array([thresholds[c][1] for c in pred])
        return (
            (scores[guard_name] < guard_t)
            | (scores[knn_name] < knn_t)
            | (scores["max cosine"] < cos_t)
        )

    pred = test.inside["_predicted"]
    unknown = flagged(test.inside, pred)
    correct = pred == test.y_inside
    out = {
        "accept_target": ACCEPT,
        "guard_accept": GUARD_ACCEPT,
        "seen_accepted": float((~unknown).mean()),
        "accuracy_on_accepted": float(correct[~unknown].mean()),
        "closed_set_accuracy": float(correct.mean()),
        "wrong_flagged": float(unknown[~correct].mean()) if (~correct).any() else 0.0,
        "flagged": {},
    }
    for name, scores in test.outside.items():
        out["flagged"][name] = float(flagged(scores, scores["_predicted"]).mean())
    return out


def y_in_seen(y: np.ndarray, held: list[int]) -> np.ndarray:
    remap = np.full(10, -1)
    remap[[k for k in range(10) if k not in held]] = np.arange(8)
    return remap[y]


# -- the table -------------------------------------------------------------------------------


def mean_over(results: list[dict], get) -> float:
    return float(np.mean([get(r) for r in results]))


def choose(results: list[dict]) -> dict[str, str]:
    """Choices made on validation only: the open-set score with the best mean AUROC over
    splits and sets, and the largest few-shot capture whose known-class accuracy falls by at
    most one point at k = 5 (mean over splits)."""
    names = list(results[0]["val"])
    sets = list(results[0]["val"][names[0]])
    mean_auroc = {
        n: mean_over(results, lambda r, n=n: np.mean([r["val"][n][s][0] for s in sets]))
        for n in names
    }
    score = max(mean_auroc, key=lambda n: mean_auroc[n])
    capture = "centred conv prototype, gated, capture 0.005"
    for c in FEW_SHOT_CAPTURES:
        label = f"centred conv prototype, gated, capture {c}"
        drop = mean_over(
            results,
            lambda r, label=label: r["val_closed"] - r["few_shot"]["val"][label]["5"]["seen"],
        )
        if drop <= 0.01:
            capture = label
    return {"score": score, "few_shot": capture}


def markdown(results: list[dict], chosen: dict[str, str], protocol: Protocol) -> str:
    """The results file's body (the header goes above it)."""
    names = list(results[0]["test"])
    sets = list(results[0]["test"][names[0]])
    lines = [
        "Splits: "
        + ", ".join(f"{r['split']} ({' + '.join(r['held_out'])})" for r in results)
        + "; "
        f"each encoder trained {protocol.epochs} epochs on the 8 seen classes (default recipe "
        "otherwise"
        + (
            ", plus " + ", ".join(f"{k} = {v}" for k, v in protocol.objective)
            if protocol.objective
            else ""
        )
        + "). Figures are means over the splits; AUROC / FPR at 95% TPR, seen-class "
        "test items as positives.",
        "",
        f"Chosen on validation: score **{chosen['score']}**; few-shot **{chosen['few_shot']}**.",
        "",
        "| score | " + " | ".join(sets) + " |",
        "|---" * (len(sets) + 1) + "|",
    ]
    for n in names:
        cells = []
        for st in sets:
            auroc = mean_over(results, lambda r, n=n, st=st: r["test"][n][st][0])
            fpr = mean_over(results, lambda r, n=n, st=st: r["test"][n][st][1])
            cells.append(f"{auroc:.3f} / {fpr:.3f}")
        mark = "**" if n == chosen["score"] else ""
        lines.append(f"| {mark}{n}{mark} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Held-out AUROC per split (test): "
        + ", ".join(
            f"{r['split']} {r['test'][chosen['score']]['held-out classes'][0]:.3f}" for r in results
        ),
        "",
    ]
    knn = next((k for k in results[0]["operating_point"] if k in chosen["score"]), "kNN k=1 conv")
    lines += [
        "## Operating point (the service's rule, thresholds from validation)",
        "",
        f"Unknown when the input guard fails (it accepts {GUARD_ACCEPT} of validation items), or "
        f"the {knn} similarity or the best cosine falls below the predicted class's threshold "
        f"(each set to accept sqrt({ACCEPT}) of the class's correctly predicted validation items).",
        "",
        "| split | seen accepted | accuracy on accepted | closed-set accuracy | wrong flagged | "
        + " | ".join(f"{st} flagged" for st in sets)
        + " |",
        "|---" * (5 + len(sets)) + "|",
    ]
    for r in results:
        op = r["operating_point"][knn]
        lines.append(
            f"| {r['split']} | {op['seen_accepted']:.3f} | {op['accuracy_on_accepted']:.3f} | "
            f"{op['closed_set_accuracy']:.3f} | {op['wrong_flagged']:.3f} | "
            + " | ".join(f"{op['flagged'][st]:.3f}" for st in sets)
            + " |"
        )
    methods = list(results[0]["few_shot"]["test"])
    shots = list(results[0]["few_shot"]["test"][methods[0]])
    lines += [
        "",
        "## Few-shot: the held-out classes imprinted from k examples each",
        "",
        f"Accuracy on the held-out classes' test items / on the seen classes' (among all 10 "
        f"classes; {protocol.episodes} draws per k, means over splits). Seen-class accuracy "
        "before imprinting: "
        + ", ".join(f"{r['split']} {r['closed_set_accuracy']:.3f}" for r in results)
        + f" (mean {mean_over(results, lambda r: r['closed_set_accuracy']):.3f}).",
        "",
        "| method | " + " | ".join(f"k = {k}" for k in shots) + " |",
        "|---" * (len(shots) + 1) + "|",
    ]
    for m in methods:
        cells = [
            f"{mean_over(results, lambda r, m=m, k=k: r['few_shot']['test'][m][k]['new']):.3f} / "
            f"{mean_over(results, lambda r, m=m, k=k: r['few_shot']['test'][m][k]['seen']):.3f}"
            for k in shots
        ]
        mark = "**" if m == chosen["few_shot"] else ""
        lines.append(f"| {mark}{m}{mark} | " + " | ".join(cells) + " |")
    if all("clustering" in r for r in results):
        lines += [
            "",
            "## Clustering of h (the seen classes' test items, L2-normalised, K-Means K = 8)",
            "",
            "| split | K-Means accuracy | silhouette (K-Means) | silhouette (classes) |",
            "|---|---|---|---|",
        ]
        for r in results:
            c = r["clustering"]
            lines.append(
                f"| {r['split']} | {c['kmeans_accuracy']:.4f} | {c['silhouette_kmeans']:.4f} | "
                f"{c['silhouette_labels']:.4f} |"
            )
    return "\n".join(lines)


# -- the shipped bundle ---------------------------------------------------------------------


def bundle_check(path: Path, data, digits: np.ndarray, labels: np.ndarray) -> str:
    """The service's own class index (service/classes/index.py) over a bundle, on the 10,000
    test images and the far sets: how many are flagged, and why; then digits, nothing like
    clothes, imprinted from 5 examples each."""
    import tempfile
    from collections import Counter

    from corel.bundle import load_bundle
    from service.classes.index import ClassIndex
    from training.evaluate import onnx_embed

    bundle = load_bundle(path)

    def run(index: ClassIndex, x_raw: np.ndarray) -> list:
        model_input = data.model_input(x_raw)
        h = onnx_embed(bundle.encoder_path, model_input)
        features = onnx_embed(bundle.encoder_path, model_input, output="features")
        return index.classify(h, 1, features=features, model_input=model_input)

    def describe(predictions: list) -> str:
        reasons = Counter(p.reason for p in predictions if p.unknown)
        flagged = sum(reasons.values()) / len(predictions)
        return f"{flagged:.3f} ({', '.join(f'{r} {n}' for r, n in reasons.most_common())})"

    with tempfile.TemporaryDirectory() as tmp:
        index = ClassIndex(bundle, Path(tmp))
        test = run(index, data.x_test)
        names = bundle.manifest.labels
        correct = np.array([p.label == names[y] for p, y in zip(test, data.y_test, strict=True)])
        unknown = np.array([p.unknown for p in test])
        lines = [
            f"Test images: {len(test)}; accuracy {correct.mean():.4f}; accepted "
            f"{(~unknown).mean():.3f}; accuracy on accepted {correct[~unknown].mean():.4f}; "
            f"wrong predictions flagged {unknown[~correct].mean():.3f}.",
            "",
            "| set | flagged unknown (reasons) |",
            "|---|---|",
            f"| test images | {describe(test)} |",
        ]
        for name, x in far_sets(data.x_test, digits, seed=3, n=200).items():
            lines.append(f"| {name} | {describe(run(index, x))} |")

        rng = np.random.default_rng(0)
        lines += ["", "| imprinted from 5 examples | its other items taken | flagged |"]
        lines.append("|---|---|---|")
        imprinted = (0, 1, 7)
        for digit in imprinted:
            pick = rng.choice(np.flatnonzero(labels == digit), 5, replace=False)
            x = data.model_input(digits[pick])
            h = onnx_embed(bundle.encoder_path, x)
            features = onnx_embed(bundle.encoder_path, x, output="features")
            index.add(f"digit {digit}", h, None, (), features)
        queries = run(index, digits)
        for digit in imprinted:
            own = [p for p, y in zip(queries, labels, strict=True) if y == digit]
            taken = np.mean([p.label == f"digit {digit}" for p in own])
            lines.append(
                f"| digit {digit} | {taken:.3f} | {np.mean([p.unknown for p in own]):.3f} |"
            )
        after = run(index, data.x_test)
        correct_after = np.mean(
            [p.label == names[y] for p, y in zip(after, data.y_test, strict=True)]
        )
        lines += [
            "",
            f"Test accuracy with the three digit classes imprinted: {correct_after:.4f} "
            f"(before {correct.mean():.4f}).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    provenance = Provenance.begin("benchmarks/open_world.py")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=Protocol.epochs)
    parser.add_argument("--splits", nargs="+", choices=list(SPLITS), default=list(SPLITS))
    parser.add_argument("--quick", action="store_true", help="1 split, 1 epoch, 3,000 items")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="trained encoders")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument(
        "--clustering-only", action="store_true", help="only the split encoders' clustering of h"
    )
    parser.add_argument("--bundle", type=Path, help="only check this bundle with the service")
    parser.add_argument(
        "--aux-loss",
        choices=["none", "instance", "rotation", "outlier"],
        default="none",
        help="train the split encoders with this auxiliary objective (training/config.py)",
    )
    parser.add_argument("--aux-weight", type=float, help="its weight (default: TrainConfig's)")
    parser.add_argument("--aux-temperature", type=float, help="instance: NT-Xent temperature")
    parser.add_argument(
        "--aux-layer", choices=["features", "h"], help="instance, rotation: the layer"
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="train the split encoders with random flips and shifts (TrainConfig.augment)",
    )
    args = parser.parse_args()
    objective: tuple[tuple[str, object], ...] = (("augment", True),) if args.augment else ()
    if args.aux_loss != "none":
        given = ("aux_weight", "aux_temperature", "aux_layer")
        objective = (
            *objective,
            ("aux_loss", args.aux_loss),
            *((name, getattr(args, name)) for name in given if getattr(args, name) is not None),
        )
    setup_logging()
    from sklearn.datasets import load_digits

    from training.data import load_dataset

    protocol = Protocol(
        epochs=args.epochs, splits=tuple(args.splits), cache_dir=args.cache, objective=objective
    )
    if args.quick:
        protocol = Protocol(
            epochs=1,
            max_train=3000,
            splits=("sandal-shirt",),
            shots=(1, 5),
            episodes=2,
            max_test=2000,
            bank_size=1000,
            far_items=100,
            cache_dir=args.cache,
            objective=objective,
        )
    data = load_dataset("fashion-mnist", data_dir=split_config(protocol).data_dir)
    raw_digits = load_digits()
    digits = resize_digits(raw_digits.images)
    if args.bundle is not None:
        title = f"Open-world check of {args.bundle} (service/classes/index.py)"
        text = provenance.document(
            title, bundle_check(args.bundle, data, digits, raw_digits.target)
        )
        provenance.write(args.out / "open_world_bundle.md", text)
        print(text)
        return
    name = "open_world_quick" if args.quick else "open_world"
    if protocol.tag():
        name += "_" + protocol.tag()
    if args.clustering_only:
        lines = [
            "| split | closed-set accuracy (seen, test) | K-Means accuracy | silhouette |",
            "|---|---|---|---|",
        ]
        for split in protocol.splits:
            encoder, w, _ = trained_split(split, protocol, data)
            seen = seen_only(data, SPLITS[split])
            h = layer_features(encoder, seen.model_input(seen.x_test))["h"]
            accuracy = float(
                ((h @ w.T / np.linalg.norm(w, axis=1)).argmax(1) == seen.y_test).mean()
            )
            c = split_clustering(h, seen.y_test)
            lines.append(
                f"| {split} | {accuracy:.4f} | {c['kmeans_accuracy']:.4f} | "
                f"{c['silhouette_kmeans']:.4f} |"
            )
        title = "Open-world benchmark: the split encoders' clustering of h (test split)"
        text = provenance.document(title, "\n".join(lines))
        provenance.write(args.out / f"{name}_clustering.md", text)
        print(text)
        return
    results = []
    for split in protocol.splits:
        started = time.perf_counter()
        if args.train_only:
            trained_split(split, protocol, data)
            continue
        result = evaluate_split(split, protocol, data, digits)
        result["seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
        log.info("%s evaluated in %.0fs", split, result["seconds"])
    if args.train_only:
        return
    chosen = choose(results)
    text = provenance.document(
        "Open-world benchmark (test split)", markdown(results, chosen, protocol)
    )
    payload = {
        "protocol": {**vars(protocol), "cache_dir": None},
        "chosen": chosen,
        "splits": results,
    }
    provenance.write(args.out / f"{name}.md", text, payload)
    print(text)


if __name__ == "__main__":
    main()
