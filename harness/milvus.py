"""A real Milvus standalone server for tests and benchmarks (the `milvus` pip package's
`milvus-server`), and a way to empty it between tests.

`start_milvus(folder)` runs `milvus-server --data folder/milvus` in a process group of its
own and returns once it answers; `stop()` ends the whole group (the binary starts etcd and
Milvus as children). The server uses fixed ports (19530 for clients, 2379 etcd, 9091
metrics), so one runs per machine: with COREL_TEST_MILVUS_URI set, tests use that server
instead of starting one. Milvus binds its client port on all interfaces (it has no
setting for the listen address); a firewalled test machine keeps it private.

Before it starts Milvus, `milvus-server` tries each of its ports with a plain bind() and
silently takes the next free one when that fails. A port whose last server was killed or
stopped with clients connected stays in TIME_WAIT for 60 s, which fails such a bind (Milvus
itself could reuse it): a server started then listens on 19531, and clients of 19530 never
find it. That is why a Milvus killed with replicas connected "never came back" (its
config said `proxy: port: 19531`). `start_milvus` therefore waits until the ports are free
and fails at once, naming the port, when the proxy went elsewhere all the same.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MilvusServer", "empty_collections", "milvus_available", "start_milvus"]

PORT = 19530
URI = f"http://127.0.0.1:{PORT}"
# the ports milvus-server tries before it starts (its config template's defaults): etcd,
# rootCoord, proxy, proxy internal, queryCoord, queryNode, indexCoord, indexNode, dataCoord,
# dataNode
_PORTS = [2379, 53100, PORT, 19529, 19531, 21123, 22930, 21121, 13333, 21124]
_PARTS = ["rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode",
          "dataCoord", "dataNode"]  # fmt: skip


def milvus_available() -> str | None:
    """Why a Milvus server cannot be had here, or None when it can."""
    if os.environ.get("COREL_TEST_MILVUS_URI"):
        return None
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        return "pymilvus is not installed (pip install -e '.[milvus]')"
    if _binary() is None:
        return "the milvus package's milvus-server is not installed (pip install -e '.[milvus]')"
    return None


def _binary() -> str | None:
    """milvus-server next to this Python (a virtualenv not on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "milvus-server"
    return str(beside) if beside.is_file() else shutil.which("milvus-server")


@dataclass
class MilvusServer:
    uri: str
    process: subprocess.Popen[bytes] | None  # None: a server this did not start
    log: Path | None = None
    ports_waited: float = 0.0  # seconds start_milvus waited for its ports to be free

    def kill(self) -> None:
        """SIGKILL to the whole group, like a crash of the machine's Milvus."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM to the group; SIGKILL when it has not ended within 20 s."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group's id is the launcher's pid
        deadline = time.monotonic() + 20
        while _group_alive(group):
            # again every second: Milvus has been seen to outlive the first SIGTERM
            os.killpg(group, sig if time.monotonic() < deadline else signal.SIGKILL)
            self.process.poll()  # reap the launcher, or it stays a zombie of the group
            time.sleep(1)
        self.process.wait(10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def start_milvus(folder: Path, timeout: float = 240) -> MilvusServer:
    """The server on 127.0.0.1:19530 with its data in `folder`, answering; or the one named
    by COREL_TEST_MILVUS_URI. It answers ~10-15 s after starting on an idle machine; seen
    taking over 2 minutes while another job kept the disk busy (its etcd syncs each write).
    After a server killed or stopped with clients connected, it first waits up to 60 s
    for the ports (see above): 58 s of 68 s after a `kill -9` with two replicas connected."""
    if uri := os.environ.get("COREL_TEST_MILVUS_URI"):
        return MilvusServer(uri, None)
    waited = _wait_for_ports(_PORTS, timeout=min(timeout, 90))
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "milvus" / "configs" / "milvus.yaml"
    config.unlink(missing_ok=True)  # milvus-server writes it again, with the ports it took
    log = folder / "milvus-server.log"
    process = subprocess.Popen(
        [
            _binary() or "milvus-server",
            *("--data", str(folder / "milvus")),
            # a time tick every 50 ms instead of 200: Strong reads (and a reader's wait for
            # its own writes) take ~4x less, which the tests' setup and teardown are full of
            *("--extra-config", "proxy.timeTickInterval=50"),
            # Milvus's parts talk over loopback, not the machine's first address (which
            # other software, Docker's bridge for one, may change while tests run)
            *(arg for part in _PARTS for arg in ("--extra-config", f"{part}.ip=127.0.0.1")),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: stop() reaches etcd and Milvus too
    )
    server = MilvusServer(URI, process, log, waited)
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"milvus-server exited:\n{log.read_text()[-3000:]}")
            port = _proxy_port(config)
            if port is not None and port != PORT:
                raise RuntimeError(f"milvus-server took port {port}: {PORT} was not free")
            try:
                MilvusClient(uri=URI, timeout=2).list_collections()
                return server
            except Exception:  # not up yet
                time.sleep(0.5)
        raise RuntimeError(f"milvus-server did not answer within {timeout:g} s")
    except BaseException:  # also Ctrl-C or SIGTERM while waiting: never leave it running
        server.stop()
        raise


def _bindable(port: int) -> bool:
    """Whether milvus-server's own test of a port (bind without SO_REUSEADDR) passes."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_ports(ports: list[int], timeout: float) -> float:
    """Until every port is bindable (one in TIME_WAIT is, within 60 s), or `timeout`: then
    the server starts anyway (a port other than the client's may move harmlessly; the
    client's is checked after). A server listening on the client port is an error.
    Returns the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    while (busy := [p for p in ports if not _bindable(p)]) and time.monotonic() < deadline:
        if PORT in busy:
            with socket.socket() as client:
                client.settimeout(1)
                if client.connect_ex(("127.0.0.1", PORT)) == 0:
                    raise RuntimeError(
                        f"port {PORT} is in use: is another milvus-server running? (one "
                        "per machine; wrap what starts one in `flock /tmp/milvus.lock`)"
                    )
        time.sleep(1)
    return time.monotonic() - started


def _proxy_port(config: Path) -> int | None:
    """The client port milvus-server wrote into Milvus's config, None before it has."""
    try:
        text = config.read_text()
    except OSError:
        return None
    section = None
    for line in text.splitlines():
        if line[:1].isalpha():  # a top-level key
            section = line.split(":")[0]
        elif section == "proxy" and (found := re.match(r"  port: (\d+)", line)):
            return int(found.group(1))
    return None


def empty_collections(uri: str, prefix: str) -> None:
    """Delete every row of the collections named `{prefix}_*`, and wait until a Strong read
    sees them gone (emptying is ~10x faster than dropping and creating them again)."""
    from pymilvus import MilvusClient

    from service.milvus import load_collection

    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            if not name.startswith(f"{prefix}_"):
                continue
            load_collection(client, name)
            key = next(
                f["name"] for f in client.describe_collection(name)["fields"] if f.get("is_primary")
            )
            # again while rows remain: a server of the previous test may still be saving as
            # it shuts down
            deadline = time.monotonic() + 10
            while _count(client, name):
                assert time.monotonic() < deadline, f"{name} still holds rows"
                client.delete(name, filter=f"{key} > 0")
    finally:
        client.close()


def _count(client: Any, collection: str) -> int:
    rows = client.query(
        collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
    )
    return int(rows[0]["count(*)"])
