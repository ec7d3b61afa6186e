"""Start the service as a child process on 127.0.0.1 and wait until it is ready.

For tests, benchmarks and scripts that need the real server: `python -m service` on a free
port, its output in a log file, returned once `/readyz` answers 200. Settings come from
the environment as usual (`COREL_*`), plus the bundle and data directory given here.
`start` does the same for any other server command (a peer the benchmarks compare with).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["LocalServer", "free_port", "launch", "start"]

REPO = Path(__file__).resolve().parents[1]  # where `-m service` resolves


@dataclass
class LocalServer:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing, like a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, a graceful shutdown; SIGKILL if that takes over 15 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    *,
    bundle: Path,
    data_dir: Path,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> LocalServer:
    """The server on a free port, ready; RuntimeError with its log if it exits or is not
    ready within `timeout` seconds (the process is stopped then)."""
    port = free_port()
    return start(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        data_dir=data_dir,
        log=log,
        env={"COREL_BUNDLE_PATH": str(bundle), "COREL_DATA_DIR": str(data_dir), **(env or {})},
        timeout=timeout,
    )


def start(
    command: list[str],
    *,
    port: int,
    data_dir: Path,
    log: Path,
    env: dict[str, str] | None = None,
    ready: str = "/readyz",
    timeout: float = 60,
) -> LocalServer:
    """`command` (run in the repository, listening on 127.0.0.1:`port`) once GET `ready`
    answers 200; RuntimeError with its log if it exits or is not ready within `timeout`
    seconds (the process is stopped then)."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = LocalServer(process, f"http://127.0.0.1:{port}", data_dir, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{server.url}{ready}", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the server was not ready within {timeout:g} s:\n{log.read_text()[-3000:]}")
