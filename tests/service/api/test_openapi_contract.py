"""The service keeps the contract its OpenAPI schema states, as schemathesis judges it.

`schemathesis run` against a real server on 127.0.0.1, over /openapi.json: every check,
positive and negative data, the examples, coverage and fuzzing phases, in hypothesis's
deterministic mode (a fixed seed, no example database) so that a run is the same every
time. The hooks in tests/support/openapi_hooks.py turn generated images and tensors into
real ones, and meet the few cross-field rules the schema can only describe, so the cases
reach the model, the store and the clustering instead of stopping at a 422. The server has
an API key, sent with every case; schemathesis also checks that a case without it is a 401.

By hand, against a running server:

    SCHEMATHESIS_HOOKS=tests.support.openapi_hooks schemathesis \\
        --config-file tests/support/schemathesis.toml run \\
        http://127.0.0.1:8000/openapi.json --checks all --mode all \\
        --phases examples,coverage,fuzzing -n 15 --generation-deterministic \\
        -H "Authorization: Bearer $COREL_API_KEY"   # when the server has a key
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.service.conftest import StartServer

MAX_EXAMPLES = 15  # per operation: 1,673 cases, about 3 minutes on 2 busy cores
KEY = "contract-test-key-0123456789"  # with a key, the `ignored_auth` check has work to do
CONFIG = REPO / "tests" / "support" / "schemathesis.toml"  # 413 counts as a rejection

pytestmark = pytest.mark.slow


def schemathesis_run(url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks", "all",
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--no-color",
        "--header", f"Authorization: Bearer {KEY}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.support.openapi_hooks",
        "PYTHONPATH": str(REPO),
    }
    # run in `workdir`: schemathesis keeps a cache of crashes in ./.schemathesis
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_service_keeps_its_openapi_contract(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(env={"COREL_API_KEY": KEY})

    done = schemathesis_run(server.url, tmp_path)

    # the report, each line cut short: a failing case can be a megabyte of pixels
    summary = "\n".join(line[:300] for line in done.stdout.splitlines()[-200:])
    assert done.returncode == 0, summary
    counted = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counted, summary
    generated, passed = map(int, counted.groups())
    assert generated == passed > 1000, summary  # every case ran, and passed
    assert server.process.poll() is None  # and the server is still up
