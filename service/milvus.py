"""The Milvus connection shared by the item store and the class store (COREL_STORE=milvus).

What an acknowledged write means here: `insert`/`delete` return once Milvus has appended
the rows to its write-ahead log (RocksMQ on disk for a standalone server, Pulsar or Kafka
for a cluster). Nothing calls `flush` per write: Milvus seals and persists segments on its
own, and the log is replayed after a restart. Reads use Session consistency: a process sees
its own writes; another replica sees them after Milvus's next time tick (200 ms by default,
`proxy.timeTickInterval`), without the cost of a Strong read on every request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymilvus import MilvusClient, MilvusException

from service.errors import ServiceUnavailableError

__all__ = ["CONSISTENCY", "connect", "load_collection", "milvus_errors", "quote"]

CONSISTENCY = "Session"
# Milvus refuses a VARCHAR longer than this, whatever the schema says
MAX_VARCHAR = 65_535


def connect(uri: str, timeout: float = 10.0) -> MilvusClient:
    """A client for `uri`: http://host:19530 (a server or cluster) or a local file path,
    which pymilvus opens with Milvus Lite when the `milvus-lite` package is installed."""
    # While Milvus is away pymilvus logs a traceback for every failed call and every
    # reconnection attempt, several a second; the service says it once per outage (the
    # watchers in items/milvus.py and classes/index.py) and answers 503 meanwhile
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    return MilvusClient(uri=uri, timeout=timeout)


def load_collection(client: MilvusClient, name: str) -> None:
    """Load `name` for searching, also when it was loaded before its last index was built.

    A process that loads a collection another process is still creating (its vector index
    built, its id index not yet) leaves it loaded with fewer indexes than it has, and every
    later load is refused ("can't change the index for loaded collection"): released and
    loaded again, it serves with all of them."""
    try:
        client.load_collection(name)
    except MilvusException as exc:
        if "can't change the index" not in exc.message:
            raise
        logging.getLogger(__name__).info("milvus: %s loaded again with all its indexes", name)
        client.release_collection(name)
        client.load_collection(name)


@contextmanager
def milvus_errors(what: str) -> Iterator[None]:
    """A Milvus failure (server down, timeout) becomes a 503 naming what failed."""
    try:
        yield
    except MilvusException as exc:
        raise ServiceUnavailableError(f"{what}: Milvus: {exc.message}") from exc


def quote(value: Any) -> str:
    """A literal in a Milvus filter expression: strings quoted and escaped as JSON does."""
    return json.dumps(value, ensure_ascii=False)
