"""Writers that POST /items until something is killed under them.

`write_until_killed(url, kill, prefix)` runs 4 threads that each POST one item at a time to
`url`, records every id answered 201 (acknowledged), calls `kill()` once `acks` of them are,
then stops the writers and returns the acknowledged ids. The caller then checks that each
of them is still there: what a crash must not lose.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

__all__ = ["vector", "write_until_killed"]

Item = Callable[[str, int, int], dict[str, Any]]  # (id, writer, n) -> the item to POST


def vector(n: int) -> list[float]:
    """A 128-d vector, the same for the same `n`."""
    return [float(x) for x in np.random.default_rng(n).normal(size=128).round(5)]


def _plain(item_id: str, worker: int, n: int) -> dict[str, Any]:
    return {"id": item_id, "vector": vector(n)}


def write_until_killed(
    url: str,
    kill: Callable[[], None],
    prefix: str,
    *,
    item: Item = _plain,
    acks: int = 40,
    within: float = 60,
    writers: int = 4,
    request_timeout: float = 5,
    keep_writing_after_errors: bool = False,
    settle: float = 0.0,
) -> list[str]:
    """Ids `{prefix}{writer}-{n}` acknowledged (201) by `url`, in the order answered.

    `kill()` is called once `acks` ids are acknowledged, or after `within` seconds when they
    are not (the caller checks the count). A request that fails in transport is not
    acknowledged; its writer stops then, or with `keep_writing_after_errors` goes on to the
    next id (for a kill of something behind `url`, which itself stays up). `settle` seconds
    after the kill, for requests in flight to get their answer, the writers are stopped.
    """
    acknowledged: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=request_timeout) as client:
            n = 0
            while not stop.is_set():
                item_id = f"{prefix}{worker}-{n}"
                body = {"items": [item(item_id, worker, n)]}
                n += 1
                try:
                    response = client.post("/items", json=body)
                except httpx.TransportError:
                    if keep_writing_after_errors:
                        continue
                    return  # the server died under this request: not acknowledged
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(item_id)

    def count() -> int:
        with lock:
            return len(acknowledged)

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + within
    while count() < acks and time.monotonic() < deadline:  # kill mid-stream
        time.sleep(0.02)
    try:
        kill()
        time.sleep(settle)
    finally:
        stop.set()
        for thread in threads:
            thread.join(request_timeout + 5)
    with lock:
        return list(acknowledged)
