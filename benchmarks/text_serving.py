"""Text serving: the real server on the shipped text bundle against the tokenizer and
onnxruntime alone, in one run on one machine.

1. In this process, before and after the server's cells (the better one counts: the
   machine is shared): WordNet test glosses tokenized with the bundle's tokenizer and embedded
   by an onnxruntime session of the encoder (the CPU provider, the service's session
   options), in batches of the service's max batch size padded to their longest text, as
   the service does: the rate a server can at best reach.
2. The real server (`python -m service` on models/wordnet-cosine, a temporary data dir),
   loaded by Debian's `wrk` (a C client that leaves the cores to the server):
   POST /embed and /classify with one gloss per request at concurrency 1 (p50, p99), and
   POST /embed with 1,000 glosses per request at concurrency 1 and 2 (items/s), the
   answer's embeddings as base64 float32 bytes (`encoding_format: base64`).

The targets (issue 21): one sentence at concurrency 1, p50 at most 2 ms through HTTP; bulk
text at least 0.8x the in-process rate.

    python benchmarks/text_serving.py            # about 1 minute
    python benchmarks/text_serving.py --quick    # 2 s cells, not saved
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from corel.bundle import load_bundle  # noqa: E402
from corel.text import trim_padding  # noqa: E402
from harness import RESULTS  # noqa: E402
from harness import wrk as wrk_  # noqa: E402
from harness.results import Provenance, md_table, output_options, output_path, verdict  # noqa: E402
from harness.server import launch  # noqa: E402
from service.inference.runtime import session_options  # noqa: E402
from training.text import is_test_text, read_wordnet_nouns  # noqa: E402

TEXT_BUNDLE = ROOT / "models" / "wordnet-cosine"
DEFAULT_OUT = RESULTS / "text_serving.md"
BULK = 1000  # texts per bulk request
MAX_BATCH = 128  # the service's default COREL_MAX_BATCH_SIZE
COLUMNS = ["measurement", "concurrency", "texts/request", "requests/s", "texts/s", "p50 ms",
           "p99 ms", "errors", "server CPU %", "client CPU %"]  # fmt: skip


def test_glosses() -> list[str]:
    texts, _ = read_wordnet_nouns()
    test = is_test_text(texts)
    return [t for t, keep in zip(texts, test, strict=True) if keep]


def in_process_rate(texts: list[str], seconds: float) -> tuple[float, float]:
    """(texts/s of tokenizer + onnxruntime on BULK texts at a time, ms per BULK batch)."""
    bundle = load_bundle(TEXT_BUNDLE)
    tokenizer = bundle.tokenizer()
    session = ort.InferenceSession(
        str(bundle.encoder_path), session_options(0), providers=["CPUExecutionProvider"]
    )
    pad = bundle.manifest.input.pad_id
    done, started, runs = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds or runs < 2:
        chunk = [texts[(done + i) % len(texts)] for i in range(BULK)]
        ids = tokenizer.encode(chunk).ids
        for i in range(0, BULK, MAX_BATCH):
            session.run(["embedding"], {"input": trim_padding(ids[i : i + MAX_BATCH], pad)})
        done += BULK
        runs += 1
    took = time.perf_counter() - started
    return done / took, 1000 * took / runs


def in_process(texts: list[str], seconds: float, rows: list[list[str]], when: str) -> float:
    """The in-process rate, measured and added to `rows` (before and after the server's)."""
    rate, batch_ms = in_process_rate(texts, seconds)
    rows.append([f"tokenizer + onnxruntime, in process ({when})", "-", f"{BULK:,}", "-",
                 f"{rate:,.0f}", f"{batch_ms:.1f}", "-", "-", "-", "-"])  # fmt: skip
    return rate


def body(texts: list[str], **options: object) -> str:
    return json.dumps({"inputs": [{"text": t} for t in texts], **options})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds a cell runs")
    output_options(parser, DEFAULT_OUT, quick="2 s cells")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.duration
    provenance = Provenance.begin("benchmarks/text_serving.py", argv)
    texts = test_glosses()
    print(f"{len(texts)} WordNet test glosses", file=sys.stderr)
    rows: list[list[str]] = []
    rates = [in_process(texts, seconds, rows, "before")]
    singles = [("POST", "/embed", body([t])) for t in texts[:500]]
    classify = [("POST", "/classify", body([t])) for t in texts[:500]]
    # as a bulk client asks: the embeddings as float32 bytes, not 128,000 numbers in JSON
    bulks = [
        ("POST", "/embed", body(texts[i : i + BULK], encoding_format="base64"))
        for i in range(0, 5 * BULK, BULK)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = launch(bundle=TEXT_BUNDLE, data_dir=work / "data", log=work / "server.log")
        try:
            cells = [("POST /embed", 1, 1, singles), ("POST /classify", 1, 1, classify),
                     ("POST /embed", 1, BULK, bulks), ("POST /embed", 2, BULK, bulks)]  # fmt: skip
            measured = {}
            for name, connections, per, requests in cells:
                script = wrk_.lua_cycle(requests)
                wrk_.run(server.url, script, connections=connections, seconds=1, work=work)
                run = wrk_.run(server.url, script, connections=connections, seconds=seconds,
                               work=work, watch={"server": server.process.pid})  # fmt: skip
                measured[(name, connections, per)] = run
                rows.append([name, str(connections), f"{per:,}", f"{run.rps:,.0f}",
                             f"{run.rps * per:,.0f}", f"{run.p50_ms:.2f}", f"{run.p99_ms:.2f}",
                             str(run.errors), f"{run.cpu['server']:.0f}",
                             f"{run.wrk_cpu:.0f}"])  # fmt: skip
                print(" | ".join(rows[-1]), file=sys.stderr)
        finally:
            server.stop()
    rates.append(in_process(texts, seconds, rows, "after"))
    rate = max(rates)  # the machine is shared: the better of the two in-process rates
    single = measured[("POST /embed", 1, 1)]
    bulk = max(measured[("POST /embed", c, BULK)].rps * BULK for c in (1, 2))
    checks = [
        f"- one text at concurrency 1: /embed p50 {single.p50_ms:.2f} ms (target <= 2 ms): "
        f"{verdict(single.p50_ms <= 2.0)}",
        f"- bulk /embed, {BULK:,} texts a request: {bulk:,.0f} texts/s, {bulk / rate:.2f}x the "
        f"better in-process rate, {rate:,.0f} texts/s (target >= 0.8x): "
        f"{verdict(bulk / rate >= 0.8)}",
    ]
    text = "\n".join([*md_table(COLUMNS, rows), "", *checks])
    raw = {"rows": rows, "in_process_texts_per_s": rate, "bulk_texts_per_s": bulk,
           "single_p50_ms": single.p50_ms}  # fmt: skip
    provenance.publish("Text serving", text, output_path(args), raw)


if __name__ == "__main__":
    main()
