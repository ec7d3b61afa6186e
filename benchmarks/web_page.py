"""The web page and the map endpoint with many stored items: how long people wait.

A real server (the shipped default bundle, a fresh data directory) is filled with the
first `--items` Fashion-MNIST test images, then:

- `GET /map` is timed through HTTP for PCA and t-SNE, first computed (cold) and then
  from the cache, with the JSON's size;
- Debian's chromium (driven by Playwright, a fresh profile) opens the page and the time
  is taken from navigation until each view is usable: the Try view (page set up, model
  read), Browse (the first 24 items' pictures shown) and the Latent map (every stored
  item drawn; the map cached, as after its first computation), and the mean time of a
  map redraw while zooming (20 steps, one frame each).

The tables, headed by where they came from (commit, machine, load, the command), are
printed and written to benchmarks/results/web_page.md (--quick writes none unless --out).

    python benchmarks/web_page.py                       # 10,000 items: about 3-5 minutes
    python benchmarks/web_page.py --items 2000          # t-SNE where the page starts it
    python benchmarks/web_page.py --quick               # 60 items, t-SNE of 40: seconds
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from harness import DEFAULT_BUNDLE, FASHION_DIR, RESULTS  # noqa: E402
from harness.results import Provenance, md_table, output_options, output_path  # noqa: E402
from harness.server import LocalServer, launch  # noqa: E402
from training.data import FASHION_MNIST_LABELS as NAMES  # noqa: E402
from training.data import load_fashion_mnist_split  # noqa: E402

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
BATCH = 500
REPEATS = 5


def fill(server: LocalServer, n: int) -> None:
    images, labels = load_fashion_mnist_split(FASHION_DIR, "test")
    with httpx.Client(base_url=server.url, timeout=300) as client:
        for start in range(0, n, BATCH):
            items = [
                {"id": f"fm-{k}", "label": NAMES[int(labels[k])], "metadata": {"index": k},
                 "input": {"tensor": {"b64": base64.b64encode(
                     images[k].astype("uint8").tobytes()).decode()}}}
                for k in range(start, min(n, start + BATCH))
            ]  # fmt: skip
            client.post("/items", json={"items": items}).raise_for_status()


def time_map(
    server: LocalServer, method: str, limit: int, first_of_server: bool = False
) -> list[list[str]]:
    """Rows: the first (computed) call, then the median of cached calls. The first map a
    server computes also imports scikit-learn (the service imports it when first needed):
    with `first_of_server`, a map of one item fewer is timed before the one asked for."""
    rows = []
    with httpx.Client(base_url=server.url, timeout=600) as client:
        limits = [(limit, "computed")]
        if first_of_server and limit > 1:  # one item fewer: another map, not cached
            limits.insert(0, (limit - 1, "computed, the server's first (imports scikit-learn)"))
        for asked, what in limits:
            started = time.perf_counter()
            first = client.get("/map", params={"method": method, "limit": asked})
            first.raise_for_status()
            cold = time.perf_counter() - started
            body = first.json()
            assert not body["cached"], "the map was cached before its first call"
            rows.append([f"GET /map?method={method}", f"{body['n_items']:,}", what,
                         f"{cold * 1000:,.0f}", f"{body['seconds'] * 1000:,.0f}",
                         f"{len(first.content) / 1e6:.2f}"])  # fmt: skip
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            again = client.get("/map", params={"method": method, "limit": limit})
            times.append(time.perf_counter() - started)
            assert again.json()["cached"]
        rows.append([f"GET /map?method={method}", f"{body['n_items']:,}", "cached",
                     f"{statistics.median(times) * 1000:,.0f}", "–",
                     f"{len(again.content) / 1e6:.2f}"])  # fmt: skip
    return rows


def time_page(server: LocalServer, profile: Path) -> list[list[str]]:
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path="/usr/bin/chromium", headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        page = context.new_page()
        page.goto(server.url + "/")  # once: the browser's own start-up is not the page's
        page.wait_for_selector("body[data-ready=true]")
        cases: list[tuple[str, str, str]] = [
            ("Try an item: page set up", "#try", "body[data-ready=true]"),
            ("Browse items: 24 pictures shown", "#browse", "#browse-gallery .tile"),
            ("Latent map: every item drawn", "#map", "#map-canvas[data-points]"),
        ]
        for name, hash_, selector in cases:
            times = []
            for _ in range(REPEATS):
                page.goto("about:blank")
                started = time.perf_counter()
                page.goto(server.url + "/" + hash_)
                page.wait_for_selector(selector)
                if hash_ == "#browse":
                    page.wait_for_function(
                        "[...document.querySelectorAll('#browse-gallery img')]"
                        ".every(i => i.complete && i.naturalWidth)"
                    )
                if hash_ == "#map":
                    page.wait_for_function("document.getElementById('map-status').dataset.kind")
                times.append(time.perf_counter() - started)
            rows.append([name, f"{statistics.median(times) * 1000:,.0f}"])
        points = page.get_attribute("#map-canvas", "data-points")
        frame_ms = page.evaluate(
            """async () => {
              const canvas = document.getElementById('map-canvas');
              const frame = () => new Promise(r => requestAnimationFrame(() => r()));
              await frame();
              const started = performance.now();
              for (let i = 0; i < 20; i++) {
                canvas.dispatchEvent(new KeyboardEvent('keydown', {key: i < 10 ? '+' : '-'}));
                await frame();
              }
              return (performance.now() - started) / 20;
            }"""
        )
        rows.append([f"Latent map: one redraw while zooming ({points} points)", f"{frame_ms:.1f}"])
        context.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/web_page.py", argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, help="stored items (test images; default 10,000)")
    parser.add_argument("--tsne-limit", type=int, help="items in the t-SNE map (default 10,000)")
    output_options(parser, RESULTS / "web_page.md", quick="60 items, a t-SNE of 40")
    args = parser.parse_args(argv)
    items = args.items or (60 if args.quick else 10_000)
    tsne_limit = args.tsne_limit or (40 if args.quick else 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        server = launch(bundle=DEFAULT_BUNDLE, data_dir=Path(tmp) / "data",
                        log=Path(tmp) / "server.log", timeout=120)  # fmt: skip
        try:
            fill(server, items)
            print(f"stored {items:,} items", file=sys.stderr, flush=True)
            map_rows = time_map(server, "pca", items, first_of_server=True)
            map_rows += time_map(server, "tsne", min(items, tsne_limit))
            print("timed GET /map", file=sys.stderr, flush=True)
            page_rows = time_page(server, Path(tmp) / "profile")
        finally:
            server.stop()
    lines = [
        *md_table(["request", "items", "map", "wall ms", "projection ms", "answer MB"], map_rows),
        "",
        *md_table(["page view (median of 5 loads)", "ms"], page_rows),
        "",
        f"{items:,} stored items; a real server on 127.0.0.1 and headless chromium on "
        "the same machine; page times from navigation until the view is usable.",
    ]
    provenance.publish("Web page and latent map", "\n".join(lines), output_path(args))


if __name__ == "__main__":
    main()
