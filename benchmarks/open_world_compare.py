"""Side by side: open-world runs (benchmarks/open_world.py's JSON files) of split encoders
trained with different objectives, on the figures the issue's targets name.

    python benchmarks/open_world_compare.py [--split SPLIT] [--out FILE] NAME=RUN.json ...

--split keeps that split alone of each run (to set a one-split run beside the baseline's).
The table is printed and written, headed by where it came from, to
benchmarks/results/open_world_compare.md (open_world_compare_SPLIT.md with --split).

Each run's own validation choice (score and few-shot capture) is used, as in its table;
two "same score" columns hold every run to the baseline's (the first run's) choice and to
Mahalanobis on the first dense layer (the best held-out score of the first table in
docs/open-world.md), so that a change of objective is not confused with a change of score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from harness import RESULTS  # noqa: E402
from harness.results import Provenance  # noqa: E402

FAR = ("uniform noise", "gaussian noise", "all black", "all white", "inverted")


def row(name: str, run: dict, baseline_score: str) -> str:
    splits = run["splits"]
    score, few = run["chosen"]["score"], run["chosen"]["few_shot"]

    def mean(get) -> float:
        return float(np.mean([get(r) for r in splits]))

    held = [r["test"][score]["held-out classes"][0] for r in splits]
    same = [r["test"][baseline_score]["held-out classes"][0] for r in splits]
    mahalanobis = [r["test"]["Mahalanobis f1"]["held-out classes"][0] for r in splits]
    digits = (mean(lambda r: r["test"][score]["digits 28x28"][0]),
              mean(lambda r: r["test"][score]["digits 28x28"][1]))  # fmt: skip
    rotated = (mean(lambda r: r["test"][score]["rotated 90"][0]),
               mean(lambda r: r["test"][score]["rotated 90"][1]))  # fmt: skip
    others = min(mean(lambda r, s=s: r["test"][score][s][0]) for s in FAR)
    shot = (mean(lambda r: r["few_shot"]["test"][few]["5"]["new"]),
            mean(lambda r: r["few_shot"]["test"][few]["5"]["seen"]))  # fmt: skip
    closed = mean(lambda r: r["closed_set_accuracy"])
    if all("clustering" in r for r in splits):
        clustering = (
            f"{mean(lambda r: r['clustering']['kmeans_accuracy']):.3f} / "
            f"{mean(lambda r: r['clustering']['silhouette_kmeans']):.3f}"
        )
    else:
        clustering = "n/a"
    return (
        f"| {name} | {', '.join(r['split'] for r in splits)} | {score} | "
        f"{' / '.join(f'{v:.3f}' for v in held)} (**{np.mean(held):.3f}**) | "
        f"{np.mean(same):.3f} | {np.mean(mahalanobis):.3f} | {others:.3f} | "
        f"{digits[0]:.3f} / {digits[1]:.3f} | "
        f"{rotated[0]:.3f} / {rotated[1]:.3f} | {shot[0]:.3f} / {shot[1]:.3f} | {closed:.4f} | "
        f"{clustering} |"
    )


def table(runs: list[tuple[str, dict]]) -> str:
    """The side-by-side table of these (name, run) pairs, the first the baseline."""
    baseline_score = runs[0][1]["chosen"]["score"]
    return "\n".join(
        [
            "| objective | splits | score (chosen on val) | held-out AUROC per split (mean) | "
            f"held-out, the baseline's score ({baseline_score}) | held-out, Mahalanobis f1 | "
            "noise, black, white, "
            "inverted: lowest AUROC | digits AUROC / FPR95 | rotated AUROC / FPR95 | 5-shot "
            "held-out / seen | closed-set accuracy (seen) | K-Means accuracy / silhouette of h |",
            "|---" * 12 + "|",
            *(row(name, run, baseline_score) for name, run in runs),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/open_world_compare.py", argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN.json")
    parser.add_argument("--split", help="keep this split alone of each run")
    parser.add_argument("--out", type=Path, help="the markdown file (default: see above)")
    args = parser.parse_args(argv)
    runs = []
    for arg in args.runs:
        name, _, path = arg.partition("=")
        run = json.loads(Path(path).read_text())
        if args.split is not None:
            run["splits"] = [r for r in run["splits"] if r["split"] == args.split]
        runs.append((name, run))
    out = args.out or RESULTS / (
        "open_world_compare" + (f"_{args.split}" if args.split else "") + ".md"
    )
    sources = "Runs: " + ", ".join(
        f"{name} = `{path}`" for name, path in (a.partition("=")[::2] for a in args.runs)
    )
    text = provenance.document("Open-world objectives side by side", table(runs), [sources])
    print(text, end="")
    provenance.write(out, text)


if __name__ == "__main__":
    main()
