"""The Docker image's size and how long `docker compose up` takes to serve: measured by
running the compose smoke test (scripts/compose_smoke.sh) and reading the figures it prints.

The smoke test builds the CPU image (`docker compose build corel`, with whatever layers the
builder has cached), starts it as its own compose project, waits for `healthy`, checks it,
restarts the container and recreates it on the same volume, then brings it down. Each start
prints the seconds from the command until /readyz answered 200 and until Docker reported the
container healthy (its healthcheck runs every 5 s). The image's layers are read with
`docker history` before the project is removed.

With --gpu it then builds the GPU variant (`--build-arg VARIANT=gpu`: onnxruntime-gpu,
faiss-gpu-cu12 and NVIDIA's CUDA wheels), records its size and layers, and starts it on this
machine, which has no GPU: the image must serve there too, on onnxruntime's CPU provider
(what `GET /readyz` reports), as a GPU image scheduled on a CPU node would.

Writes benchmarks/results/docker_image.md, headed by where it came from (commit, machine,
load, the command). Needs Docker with `docker compose` and Debian's dataset-fashion-mnist.

    python benchmarks/docker_image.py           # a few minutes; the first build far longer
    python benchmarks/docker_image.py --gpu     # and the GPU image (about 4 GB of wheels)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from harness import REPO, RESULTS  # noqa: E402
from harness.progress import say  # noqa: E402
from harness.results import Provenance, md_table  # noqa: E402

SMOKE = ["bash", "scripts/compose_smoke.sh"]
_BUILT = re.compile(r"^built (?P<image>\S+) in (?P<seconds>[0-9.]+) s: (?P<mb>[0-9]+) MB$")
_START = re.compile(
    r"^(?P<label>[^:]+): /readyz 200 after (?P<ready>[0-9.]+) s, "
    r"docker healthy after (?P<healthy>[0-9.]+) s"
)
_PASS = re.compile(r"^\[smoke\] PASS in (?P<seconds>[0-9]+) s$")


@dataclass
class Smoke:
    """What the smoke test printed."""

    image: str = ""
    build_s: float = float("nan")
    size_mb: int = 0
    starts: dict[str, tuple[float, float]] = field(default_factory=dict)  # ready s, healthy s
    total_s: float | None = None  # None: it did not pass


def parse(output: str) -> Smoke:
    """The figures in the smoke test's output."""
    smoke = Smoke()
    for line in output.splitlines():
        line = line.strip()
        if built := _BUILT.match(line):
            smoke.image, smoke.build_s = built["image"], float(built["seconds"])
            smoke.size_mb = int(built["mb"])
        elif start := _START.match(line):
            smoke.starts[start["label"]] = (float(start["ready"]), float(start["healthy"]))
        elif passed := _PASS.match(line):
            smoke.total_s = float(passed["seconds"])
    return smoke


@dataclass
class GpuImage:
    """The GPU variant: built, sized and started without a GPU."""

    image: str
    build_s: float
    size_mb: int
    layers: list[tuple[str, str]]
    ready_s: float | None  # start to /readyz 200; None: it never answered
    ready: dict[str, object]  # GET /readyz's body


GPU_IMAGE, GPU_PORT = "corel-embed:gpu", 18431


def build_gpu_image() -> GpuImage:
    """Build the GPU variant, then run it here (no GPU) until /readyz answers 200."""
    say(f"building {GPU_IMAGE} (docker build --build-arg VARIANT=gpu .)")
    started = time.perf_counter()
    subprocess.run(
        ["docker", "build", "-t", GPU_IMAGE, "--build-arg", "VARIANT=gpu", "."],
        cwd=REPO,
        check=True,
    )
    build_s = time.perf_counter() - started
    size = int(_run(["docker", "image", "inspect", "-f", "{{.Size}}", GPU_IMAGE]))
    name = "corel-gpu-image-check"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    say(f"starting {GPU_IMAGE} on this machine (no GPU), port {GPU_PORT}")
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{GPU_PORT}:8000", GPU_IMAGE],
        check=True,
        capture_output=True,
    )
    ready_s, ready = None, {}
    try:
        while time.perf_counter() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{GPU_PORT}/readyz", timeout=2) as r:
                    ready = json.loads(r.read())
                    ready_s = time.perf_counter() - started
                    break
            except OSError:
                time.sleep(0.5)
    finally:
        sys.stderr.write(_run(["docker", "logs", "--tail", "20", name]) + "\n")
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return GpuImage(GPU_IMAGE, build_s, size // 1_000_000, _layers(GPU_IMAGE), ready_s, ready)


def gpu_report(gpu: GpuImage) -> str:
    started = "never answered" if gpu.ready_s is None else f"{gpu.ready_s:.1f} s"
    rows = [
        ["GPU image", f"`{gpu.image}`: {gpu.size_mb:,} MB"],
        [
            "`docker build --build-arg VARIANT=gpu .` (the builder's cache as it was)",
            f"{gpu.build_s:.1f} s",
        ],
        ["`docker run` on this machine (no GPU) to `/readyz` 200", started],
        ["`GET /readyz` there", f"`{json.dumps(gpu.ready)}`" if gpu.ready else "-"],
    ]
    return "\n".join(
        [
            "## GPU image",
            "",
            *md_table(["", "measured"], rows),
            "",
            *md_table(["layer size", "created by"], gpu.layers),
        ]
    )


def _layers(image: str) -> list[tuple[str, str]]:
    layers = []
    history = _run(["docker", "history", "--format", "{{.Size}}\t{{.CreatedBy}}", image])
    for line in history.splitlines():
        size, _, created = line.partition("\t")
        if size not in ("0B", ""):
            layers.append((size, f"`{created[:120].replace('|', '/')}`"))
    return layers


def report(smoke: Smoke, versions: str, layers: list[tuple[str, str]]) -> str:
    """The results file's body."""
    rows = [
        ["CPU image", f"`{smoke.image}`: {smoke.size_mb:,} MB"],
        ["`docker compose build corel` (the builder's cache as it was)", f"{smoke.build_s:.1f} s"],
        *(
            [
                f"{label}: command to `/readyz` 200 / to `healthy`",
                f"{ready:.1f} s / {healthy:.1f} s",
            ]
            for label, (ready, healthy) in smoke.starts.items()
        ),
        ["the whole smoke test", "-" if smoke.total_s is None else f"{smoke.total_s:.0f} s"],
    ]
    lines = [*md_table(["", "measured"], rows), "", f"Docker: {versions}."]
    if layers:
        lines += ["", *md_table(["layer size", "created by"], layers)]
    return "\n".join(lines)


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"({exc})"
    return done.stdout.strip() or done.stderr.strip()


def main(argv: list[str] | None = None) -> None:
    provenance = Provenance.begin("benchmarks/docker_image.py", argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "docker_image.md", help="markdown file to write"
    )
    parser.add_argument(
        "--gpu", action="store_true", help="then build the GPU image and start it here"
    )
    args = parser.parse_args(argv)
    say(f"running {' '.join(SMOKE)} (COREL_SMOKE_KEEP=1: the image's layers are read after)")
    done = subprocess.run(
        SMOKE,
        cwd=REPO,
        env={**os.environ, "COREL_SMOKE_KEEP": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sys.stderr.write(done.stdout)
    smoke = parse(done.stdout)
    layers = _layers(smoke.image) if smoke.image else []
    project = os.environ.get("COREL_SMOKE_PROJECT", "corel-smoke")  # the smoke test's own
    subprocess.run(
        ["docker", "compose", "-p", project, "-f", "docker-compose.yml", "down", "-v"],
        cwd=REPO,
        capture_output=True,
    )
    versions = (
        f"{_run(['docker', 'version', '--format', '{{.Server.Version}}'])}, "
        f"compose {_run(['docker', 'compose', 'version', '--short'])}"
    )
    if done.returncode != 0:  # nothing written: a failed run's figures are not results
        raise SystemExit(f"the smoke test failed ({done.returncode}); its output is above")
    body = report(smoke, versions, layers)
    if args.gpu:
        gpu = build_gpu_image()
        body += "\n\n" + gpu_report(gpu)
        if gpu.ready_s is None:
            sys.stderr.write(body + "\n")
            raise SystemExit(f"{gpu.image} did not answer /readyz 200 on this machine")
    text = provenance.document("Docker image and compose start-up", body)
    print(text, end="")
    provenance.write(args.out, text)


if __name__ == "__main__":
    main()
