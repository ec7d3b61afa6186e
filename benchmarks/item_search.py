"""Item search at a million items on one machine: the index kinds in process, then the server.

In one run on one machine:

1. Data: N items (default 1,000,000) embedded by the bundle's encoder with onnxruntime from
   real Fashion-MNIST images: the 69,000 images left after holding out 1,000 test images,
   then seeded variants of them (shifts of up to 2 px, horizontal flips, Gaussian pixel
   noise) until there are N. Queries: one variant of each held-out test image, so neither
   a query nor its source image is indexed. The embeddings are cached (float32 .npy) under
   benchmarks/.cache/item_search/, so a rerun skips this step; items are made in seeded
   chunks, so a smaller N is a prefix of a larger one's cache.
2. In process, per index kind: flat (exact), hnsw, ivf (k-means coarse centroids, as the
   service builds them) and ivf-classes (an IVF index whose coarse centroids are the
   model's 10 class vectors, no training): build time, memory per item (snapshot bytes and
   anonymous RSS growth), recall@10 against exact search, queries/s one query at a time
   and 1,000 at once, and the same with an `allowed` filter of 10 % (a label, drawn at
   random per query) and of 1 % (a metadata-like bucket, random per query). efSearch and
   nprobe are swept to show the recall/speed trade-off.
3. Through the real server (`python -m service`) on a data directory built offline with the
   service's own classes (ItemStore.insert, then a LiveIndex flushed to write the HNSW
   snapshot): time from process start to /readyz 200 (also after `kill -9` during writes),
   recall@10 of GET /neighbors against exact search, GET /neighbors latency at concurrency
   1 and 8 with Debian's `wrk` (a C load generator: it leaves the cores to the server),
   filtered by a label (10 %) and by a metadata bucket (1 %, POST /neighbors), and
   POST /items latency with no background job, during a merge and during a rebuild.
4. Bulk import: `corel-import` of Fashion-MNIST train images into a fresh server, next to
   raw onnxruntime on the same images, measured in the same run.

Prints markdown tables, the targets as measured ratios with PASS/MISS, and the command that
reproduces them; the full run writes benchmarks/results/item_search.md, .json and .png, the
markdown headed by where it came from (harness.results). Progress goes to stderr with the
elapsed time and the load average. The parts live in benchmarks/search/.

    python benchmarks/item_search.py                         # N = 1,000,000: 1-2 h on 2 cores
    python benchmarks/item_search.py --items 20000 --quick   # smoke test, not saved
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from benchmarks.search import options, report  # noqa: E402
from benchmarks.search.bulk_import import bulk_import  # noqa: E402
from benchmarks.search.data import dataset  # noqa: E402
from benchmarks.search.index_study import IndexStudy, in_process  # noqa: E402
from benchmarks.search.server_run import through_server  # noqa: E402
from corel.bundle import load_bundle  # noqa: E402
from harness import RESULTS  # noqa: E402
from harness.progress import say  # noqa: E402
from harness.results import Provenance, output_path  # noqa: E402

DEFAULT_OUT = RESULTS / "item_search.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = options.parser(
        __doc__,
        out=DEFAULT_OUT,
        beside=", with .json and .png beside it",
        quick="smoke test: fewer settings, 0.3 s timings, 1 s wrk runs, a 5,000-image import",
        skip=["index", "server", "import"],
        skip_help="leave out a part (repeatable)",
    )
    return options.parse(parser, argv)


def main(argv: list[str] | None = None) -> None:
    run = Provenance.begin("benchmarks/item_search.py", argv)
    args = parse_args(argv)
    out = output_path(args)
    if shutil.which("wrk") is None and "server" not in args.skip:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    say(f"item search benchmark, N={args.items:,}: {run.command}")
    args.cache.mkdir(parents=True, exist_ok=True)
    data = dataset(args.items, args.seed, args.bundle, args.cache)
    study = IndexStudy()
    if "index" not in args.skip:
        class_vectors = load_bundle(args.bundle).class_vectors
        study = in_process(data, class_vectors, args.quick, args.cache)
    server = imported = None
    with tempfile.TemporaryDirectory(dir=args.cache, prefix="run-") as tmp:
        work = Path(tmp)
        if "server" not in args.skip:
            server = through_server(data, args.bundle, args.seed, args.quick, work, args.cache)
        if "import" not in args.skip:
            imported = bulk_import(args.bundle, args.import_rows, work)
    text = report.report(run, args, data, study, server, imported)
    print(text, end="")
    if out is not None:
        written = run.write(out, text, report.raw(data, study, server, imported))
        if study.rows:
            written.append(out.with_suffix(".png"))
            report.plot(study.rows, written[-1], len(data.vectors))
        say("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
