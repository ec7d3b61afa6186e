"""The service keeps the contract its OpenAPI schema states, as schemathesis judges it.

`schemathesis run` against a real server on 127.0.0.1, over /openapi.json, with every
check, in five runs on one server (its items and classes carry over from run to run) and
a sixth on a server of the text model:

- the examples and coverage phases, positive and negative data, in hypothesis's
  deterministic mode: the boundary cases the schema defines (they depend on no seed);
- three runs of the fuzzing and stateful phases, positive and negative data, each with its
  own seed: random cases, and sequences that follow the schema's links (create an item,
  then read, page, search and delete it; add a class, then remove it);
- one run without the hooks, negative data only, fuzzing and stateful: invalid cases as a
  client with no help makes them, which must all be refused (4xx, never a 500);
- the text model (models/wordnet-cosine): every phase, positive and negative, one seed:
  strings where the image model takes pixels.

A fixed seed makes each run the same every time (no example database is kept). The hooks
in tests/support/openapi_hooks.py turn generated images and tensors into real ones, and
meet the few cross-field rules the schema can only describe, so the cases reach the model,
the store and the clustering instead of stopping at a 422. The server has an API key, sent
with every case; schemathesis also checks that a case without it is a 401.

By hand, against a running server (one of the runs; -H when the server has a key):

    SCHEMATHESIS_HOOKS=tests.support.openapi_hooks schemathesis \\
        --config-file tests/support/schemathesis.toml run \\
        http://127.0.0.1:8000/openapi.json --checks all --mode all \\
        --phases fuzzing,stateful -n 12 --seed 1 --generation-database none \\
        -H "Authorization: Bearer $COREL_API_KEY"
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.server import LocalServer
from tests.conftest import REPO, TEXT_BUNDLE
from tests.service.conftest import StartServer

KEY = "contract-test-key-0123456789"  # with a key, the `ignored_auth` check has work to do
CONFIG = REPO / "tests" / "support" / "schemathesis.toml"  # 413 counts as a rejection
MAX_EXAMPLES = 12  # per operation and run of the fuzzing phase

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Run:
    mode: str  # positive, negative or all
    phases: str
    seed: int | None  # None: hypothesis's deterministic mode
    hooks: bool
    at_least: int  # cases: fewer means the run did not really run
    server: str = "keyed_server"  # the fixture of the server it runs against

    def arguments(self) -> list[str]:
        seeding = ["--generation-deterministic"] if self.seed is None else [  # no database
            "--seed", str(self.seed), "--max-examples", str(MAX_EXAMPLES),
            "--generation-database", "none"]  # fmt: skip
        return ["--mode", self.mode, "--phases", self.phases, *seeding]


RUNS = {
    "boundaries": Run("all", "examples,coverage", None, hooks=True, at_least=1000),
    "seed-1": Run("all", "fuzzing,stateful", 1, hooks=True, at_least=200),
    "seed-2": Run("all", "fuzzing,stateful", 2, hooks=True, at_least=200),
    "seed-3": Run("all", "fuzzing,stateful", 3, hooks=True, at_least=200),
    "negative-without-hooks": Run("negative", "fuzzing,stateful", 4, hooks=False, at_least=200),
    # the text model, whose inputs are strings: every phase, one seed
    "text-model": Run(
        "all",
        "examples,coverage,fuzzing,stateful",
        5,
        hooks=True,
        at_least=1000,
        server="text_server",
    ),
}


def schemathesis_run(url: str, run: Run, workdir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks", "all",
        *run.arguments(),
        "--workers", "1",
        "--no-color",
        "--header", f"Authorization: Bearer {KEY}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if run.hooks:
        env["SCHEMATHESIS_HOOKS"] = "tests.support.openapi_hooks"
    # run in `workdir`: schemathesis keeps a cache of crashes in ./.schemathesis
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def keyed_server(start_module_server: StartServer) -> LocalServer:
    return start_module_server(env={"COREL_API_KEY": KEY})


@pytest.fixture(scope="module")
def text_server(
    start_module_server: StartServer, tmp_path_factory: pytest.TempPathFactory
) -> LocalServer:
    data_dir = tmp_path_factory.mktemp("text-server-data")
    return start_module_server(bundle=TEXT_BUNDLE, data_dir=data_dir, env={"COREL_API_KEY": KEY})


@pytest.mark.parametrize("name", RUNS)
def test_the_service_keeps_its_openapi_contract(
    request: pytest.FixtureRequest, name: str, tmp_path: Path
) -> None:
    run = RUNS[name]
    server: LocalServer = request.getfixturevalue(run.server)

    done = schemathesis_run(server.url, run, tmp_path)

    # the report, each line cut short: a failing case can be a megabyte of pixels
    summary = "\n".join(line[:300] for line in done.stdout.splitlines()[-200:])
    assert done.returncode == 0, summary
    counted = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counted, summary
    generated, passed = map(int, counted.groups())
    assert generated == passed >= run.at_least, summary  # every case ran, and passed
    assert "Stateful" not in run.phases or re.search(r"Scenarios:\s+[1-9]", done.stdout), summary
    assert server.process.poll() is None  # and the server is still up
