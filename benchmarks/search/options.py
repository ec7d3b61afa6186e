"""The command-line options item_search.py and store_comparison.py share: the items (N, the
bundle, the seed, the cache), quick mode and the results file, the bulk import's size, the
parts to leave out, a note."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.search.bulk_import import IMPORT_ROWS, QUICK_IMPORT_ROWS
from benchmarks.search.data import CACHE
from harness import DEFAULT_BUNDLE
from harness.results import output_options


def parser(
    doc: str | None, *, out: Path, beside: str, quick: str, skip: Sequence[str], skip_help: str
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000, help="N (default 1,000,000)")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--seed", type=int, default=0)
    output_options(parser, out, quick=quick, beside=beside)
    parser.add_argument(
        "--import-rows",
        type=int,
        help=f"train images each bulk import sends (default {IMPORT_ROWS:,}, quick "
        f"{QUICK_IMPORT_ROWS:,}; at most {IMPORT_ROWS:,})",
    )
    parser.add_argument("--skip", action="append", default=[], choices=list(skip), help=skip_help)
    parser.add_argument(
        "--cache",
        type=Path,
        default=CACHE,
        help="embeddings and data directories, shared by both benchmarks (%(default)s)",
    )
    parser.add_argument("--note", help="a line for the results file, e.g. what else ran")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The options, with --import-rows filled in and checked and the cache made absolute."""
    args = parser.parse_args(argv)
    args.import_rows = args.import_rows or (QUICK_IMPORT_ROWS if args.quick else IMPORT_ROWS)
    if not 0 < args.import_rows <= IMPORT_ROWS:
        parser.error(f"--import-rows must lie in 1..{IMPORT_ROWS:,}")
    args.cache = args.cache.resolve()
    return args
