"""The harness that tests and benchmarks share: the real server and a real Milvus started on
this machine, writers to crash them under, the wrk load generator, CPU accounting, progress
lines, and the header every benchmark's results file starts with.

- `harness.server`: `python -m service` (or another server command) on a free port of
  127.0.0.1, ready.
- `harness.milvus`: the `milvus` pip package's standalone server, and emptying it.
- `harness.writers`: writers that POST /items until something is killed under them.
- `harness.wrk`: Debian's `wrk` with a Lua script of requests, and what it measured.
- `harness.cpu`: CPU seconds of a process, its tree and this process's children.
- `harness.progress`: progress lines on stderr with the elapsed time and the load.
- `harness.results`: where a result came from (commit, date, machine, load, command).
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"  # where each benchmark writes its results files
DEFAULT_BUNDLE = REPO / "models" / "fashion-mnist-cosine"  # the shipped default model
FASHION_DIR = Path(os.environ.get("COREL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
