"""harness.wrk against a tiny HTTP server: each request carries its body, failures count.

(Every /classify of benchmarks/replicas.py's earlier runs went out without its body, when
the Lua table of bodies lost its braces: this is the check that it cannot again.)
"""

import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from harness import wrk

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="needs Debian's wrk")


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.seen.append((self.command, self.path, body))
        self.send_response(200 if self.path == "/ok" else 422)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Recorder.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_every_request_carries_its_body_in_turn(server: str, tmp_path: Path) -> None:
    bodies = ['{"n": 1}', '{"n": 2, "s": "]]"}', '{"n": 3}']
    script = wrk.lua_cycle([("POST", "/ok", b) for b in bodies])
    run = wrk.run(
        server, script, connections=2, seconds=1, work=tmp_path, watch={"me": os.getpid()}
    )
    assert run.requests > 10 and run.errors == 0
    assert run.p50_ms <= run.p99_ms <= run.max_ms
    assert run.rps > 0 and "me" in run.cpu and run.wrk_cpu >= 0
    assert {body.decode() for _, _, body in Recorder.seen} == set(bodies)
    assert {(method, path) for method, path, _ in Recorder.seen} == {("POST", "/ok")}
    assert list(tmp_path.iterdir()) == []  # the script is removed


def test_answers_that_are_not_2xx_are_errors(server: str, tmp_path: Path) -> None:
    script = wrk.lua_cycle([("POST", "/ok", "{}"), ("POST", "/bad", "{}")])
    run = wrk.run(server, script, connections=1, seconds=1, work=tmp_path)
    assert run.errors > 0 and run.errors < run.requests
