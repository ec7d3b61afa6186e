"""A thread that follows a shared class store (milvus) for the class index: it polls, and
while the store is away it keeps the set the index has, saying so once per outage."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["StoreWatcher"]

log = logging.getLogger(__name__)


class StoreWatcher:
    """Calls `poll` every `interval` seconds in a daemon thread, from now until `stop`."""

    def __init__(self, poll: Callable[[], None], interval: float) -> None:
        self._poll, self._interval = poll, interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="class-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        failing = False
        while not self._stopping.wait(self._interval):
            try:
                self._poll()
            except Exception as exc:  # Milvus away: keep serving the set we have
                if not failing:  # once per outage, not twice a second
                    log.warning("classes: cannot read the shared class store: %s", exc)
                failing = True
                continue
            if failing:
                log.info("classes: the shared class store answers again")
            failing = False
