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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymilvus import MilvusClient, MilvusException

from service.errors import ServiceUnavailableError
from service.settings import is_lite_uri

__all__ = ["CONSISTENCY", "connect", "load_collection", "milvus_errors", "quote"]

CONSISTENCY = "Session"
# Milvus refuses a VARCHAR longer than this, whatever the schema says
MAX_VARCHAR = 65_535


def connect(uri: str, timeout: float = 10.0) -> MilvusClient:
    """A client for `uri`: http://host:19530 (a server or cluster) or a local `.db` path,
    which pymilvus opens with Milvus Lite (the `milvus-lite` package) inside this process."""
    # While Milvus is away pymilvus logs a traceback for every failed call and every
    # reconnection attempt, several a second; the service says it once per outage (the
    # watchers in items/milvus.py and classes/watcher.py) and answers 503 meanwhile
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    # Milvus Lite serves pymilvus over gRPC inside this process, and its server logs a
    # traceback for each call it does not implement, which pymilvus expects and passes over
    # (AllocTimestamp, while an index is created)
    logging.getLogger("grpc._server").addFilter(_not_unimplemented)
    return (_LiteClient if is_lite_uri(uri) else MilvusClient)(uri=uri, timeout=timeout)


# Milvus Lite's engine takes one writer at a time per collection ("concurrent writers are
# not supported safely": it allocates keys and appends to its log without a lock), and the
# service writes from several threads: the Lite clients of this process take turns
_LITE_WRITES = threading.Lock()


class _LiteClient(MilvusClient):  # type: ignore[misc]
    """A client whose writes (insert, upsert, delete) hold _LITE_WRITES."""

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        with _LITE_WRITES:
            return super().insert(*args, **kwargs)

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        with _LITE_WRITES:
            return super().upsert(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        with _LITE_WRITES:
            return super().delete(*args, **kwargs)


def _not_unimplemented(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], NotImplementedError))


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
