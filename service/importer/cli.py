"""`corel-import`: the command line, and the loop that keeps the server busy.

The loop reads and encodes the next batch while up to `--concurrency` batches are with the
server, and acknowledges batches in row order, so the state file's `next_row` always means
"every row before this is stored".
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from service.importer.client import ServiceClient, encode_batch
from service.importer.errors import ImportFailed
from service.importer.progress import Progress
from service.importer.sources import FashionMnist, ModelInput, Rows, Source, open_source
from service.importer.state import ImportState

__all__ = ["main"]

BODY_BUDGET = 12 * 1024 * 1024  # bytes per request, under the server's default 16 MiB
DESCRIPTION = """\
Load a corpus into a running corel service, fast and resumably, through POST /items.

Each row becomes an item with the id {prefix}{row} (prefix: the source's name and "-"), so
running the same command again never stores an item twice: it resumes after the last
batch the server acknowledged (recorded in the state file) and counts items that the
server already holds as skipped."""
EPILOG = """\
sources:
  FOLDER      images (PNG, JPEG, ...), one sub-folder per class: the sub-folder's name is
              the label; images directly in FOLDER have none. Each item's metadata
              records its file.
  FILE.npz    x (N, ...) raw values in the model's units (pixels 0..255); optional y (N,)
              labels, numbers or strings; optional ids (N,). x is streamed from the archive.
  FILE.csv    a header row; a `label` column, an optional `id` column, and the feature
              columns in the model's units.

for a text model (GET /model says input.kind "text"); each item's input is its text:
  FOLDER      .txt files, one sub-folder per class (one item per file, the sub-folder's
              name its label; files directly in FOLDER have none). Each item's metadata
              records its file.
  FILE.csv    a header row with a `text` column; optional `label` and `id` columns; any
              other column goes into the item's metadata (as text).
  FILE.jsonl  one JSON object a line: "text", optional "label" and "id"; any other key
              goes into the item's metadata as it is.
  A text longer than the model's max_length tokens is stored whole, embedded from its
  first tokens, and counted in the summary (--no-truncate refuses it instead).

examples:
  corel-import --fashion-mnist /usr/share/datasets/fashion-mnist --split train
  corel-import photos/ --url http://search:8000 --api-key "$KEY" --no-store-input
  corel-import vectors.npz --limit 1000          # the first 1,000, then the rest:
  corel-import vectors.npz
  corel-import sentences.jsonl --url http://127.0.0.1:8766   # a text model's server

exit status: 0 done, 1 failed or interrupted (one line on stderr says why; run again to
resume), 2 bad usage."""


@dataclass(frozen=True)
class Summary:
    rows: int  # rows done in this run
    sent: int  # stored by this run
    skipped: int  # found already stored
    seconds: float
    resumed_at: int
    truncated: int = 0  # texts the server cut to the model's max_length tokens

    def line(self) -> str:
        if not self.rows and self.resumed_at:
            return f"nothing to import: the first {self.resumed_at:,} rows are stored already"
        rate = self.rows / self.seconds if self.seconds else 0.0
        resumed = f" (resumed at row {self.resumed_at:,})" if self.resumed_at else ""
        return (
            f"imported {self.rows:,} items{resumed}: {self.sent:,} sent, {self.skipped:,} "
            f"skipped as already stored, {self.seconds:.1f} s, {rate:,.0f} items/s"
            + (
                f"; {self.truncated:,} texts longer than the model's max_length were "
                "embedded from their first tokens"
                if self.truncated
                else ""
            )
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corel-import",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add(
        "source",
        nargs="?",
        type=Path,
        metavar="SOURCE",
        help="a FOLDER, FILE.npz, FILE.csv or FILE.jsonl",
    )
    add(
        "--fashion-mnist",
        type=Path,
        metavar="DIR",
        help="instead of SOURCE: Fashion-MNIST from the IDX .gz files in DIR",
    )
    add("--split", choices=["train", "test"], help="with --fashion-mnist (default: train)")
    add("--url", default="http://127.0.0.1:8000", help="the service (default: %(default)s)")
    add(
        "--api-key",
        default=os.environ.get("COREL_API_KEY") or None,
        metavar="KEY",
        help="sent as a Bearer token (default: $COREL_API_KEY)",
    )
    add(
        "--batch-size",
        type=_positive,
        default=1024,
        metavar="N",
        help="items per request (default: %(default)s, the server's max_inputs_per_request)",
    )
    add(
        "--concurrency",
        type=_positive,
        default=2,
        metavar="N",
        help="requests in flight (default: %(default)s); keep N x batch size within the "
        "server's COREL_QUEUE_SIZE (2048)",
    )
    add("--label", help="give every item this label (for sources without labels)")
    add(
        "--id-prefix",
        metavar="PREFIX",
        help="ids are PREFIX{row} (default: the source's name and '-'); with a source's own "
        "ids, PREFIX{id}",
    )
    add(
        "--limit",
        type=_positive,
        metavar="N",
        help="the first N rows only (a later run without it goes on from there)",
    )
    add(
        "--no-store-input",
        dest="store_input",
        action="store_false",
        help="keep no inputs on the server: less disk, but no re-embedding after a model change",
    )
    add(
        "--state",
        type=Path,
        metavar="PATH",
        help="the state file (default: SOURCE.import-state.json beside SOURCE, or "
        "./fashion-mnist-SPLIT.import-state.json)",
    )
    add(
        "--no-truncate",
        dest="truncate",
        action="store_false",
        help="text models: stop at a text longer than the model's max_length tokens, instead "
        "of embedding its first tokens",
    )
    add("--quiet", action="store_true", help="no progress line, only the summary")
    return p  # fmt: skip


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def check_usage(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.source is None) == (args.fashion_mnist is None):
        p.error("give a SOURCE or --fashion-mnist DIR (one of them)")
    if args.split is not None and args.fashion_mnist is None:
        p.error("--split goes with --fashion-mnist")
    if args.id_prefix is not None and re.search(r"[/\x00-\x1f]", args.id_prefix):
        p.error("--id-prefix: item ids may not hold '/' or control characters")
    if args.label == "":
        p.error("--label: give a non-empty label")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    check_usage(p, args)
    client = ServiceClient(args.url, api_key=args.api_key)
    try:
        summary = run(args, client)
    except ImportFailed as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted; run the same command again to resume")
    finally:
        client.close()
    sys.stdout.write(summary.line() + "\n")
    return 0


def _fail(message: str) -> int:
    sys.stderr.write(f"corel-import: error: {message}\n")
    return 1


def run(args: argparse.Namespace, client: ServiceClient) -> Summary:
    model = client.model_input()
    source = _open(args, model)
    prefix = args.id_prefix if args.id_prefix is not None else f"{source.name}-"
    state_path = args.state or _default_state(args, source)
    fresh = ImportState(str(source.path.resolve()), prefix, client.url, source.total)
    state = ImportState.open(state_path, fresh)
    stop = min(source.total, args.limit or source.total)
    size = _batch_size(args.batch_size, model)
    progress = Progress(total=stop, done=min(state.next_row, stop), enabled=not args.quiet)
    resumed_at, sent_before, skipped_before = state.next_row, state.sent, state.skipped
    pending: deque[tuple[Rows, Future[tuple[int, int]]]] = deque()
    truncated = [0]
    pool = ThreadPoolExecutor(args.concurrency, thread_name_prefix="post-items")
    try:
        for rows in source.rows(state.next_row, stop, size):
            ids = _ids(rows, prefix, args.id_prefix is not None)
            body = encode_batch(
                rows, ids, store_input=args.store_input, label=args.label, truncate=args.truncate
            )
            while len(pending) >= args.concurrency:
                truncated[0] += _acknowledge(pending.popleft(), state, state_path, progress)
            pending.append((rows, pool.submit(client.post_items, body, len(ids), rows.start)))
        while pending:
            truncated[0] += _acknowledge(pending.popleft(), state, state_path, progress)
    except ImportFailed as exc:  # say how far it got
        raise ImportFailed(f"{exc} [{state.next_row:,} of {stop:,} rows stored]") from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()
    return Summary(
        rows=max(state.next_row - resumed_at, 0),
        sent=state.sent - sent_before,
        skipped=state.skipped - skipped_before,
        seconds=progress.seconds,
        resumed_at=resumed_at,
        truncated=truncated[0],
    )


def _acknowledge(
    job: tuple[Rows, Future[tuple[int, int]]], state: ImportState, path: Path, progress: Progress
) -> int:
    """Record a batch the server answered; how many of its texts it truncated."""
    rows, future = job
    sent, truncated = future.result()
    state.advance(path, len(rows.values), sent)
    progress.update(state.next_row)
    return truncated


def _open(args: argparse.Namespace, model: ModelInput) -> Source:
    if args.fashion_mnist is not None:
        return FashionMnist(args.fashion_mnist, args.split or "train", model)
    return open_source(args.source.resolve(), model)  # resolved: `.` has a name then


def _default_state(args: argparse.Namespace, source: Source) -> Path:
    if args.fashion_mnist is not None:  # beside a system folder we may not write to
        return Path(f"{source.name}.import-state.json")
    return source.path.with_name(source.path.name + ".import-state.json")


def _ids(rows: Rows, prefix: str, prefix_given: bool) -> list[str]:
    if rows.ids is not None:
        return [f"{prefix}{i}" for i in rows.ids] if prefix_given else rows.ids
    return [f"{prefix}{rows.start + n}" for n in range(len(rows.values))]


def _batch_size(wanted: int, model: ModelInput) -> int:
    """`wanted`, or fewer when a batch of float32 tensors would pass the body budget (text
    batches end early by their own byte count: sources/text.py)."""
    if model.kind == "text":
        return wanted
    item_bytes = math.ceil(math.prod(model.shape) * 4 * 4 / 3) + 200  # base64, id, label
    fits = max(1, BODY_BUDGET // item_bytes)
    if fits < wanted:
        sys.stderr.write(f"note: {fits} items per request, to keep bodies under 12 MiB\n")
    return min(wanted, fits)
