"""What both item stores share of their start: they come up in a thread of their own.

`start` returns at once; the thread (`_run`) loads or connects, retrying while it fails and
saying why in `_load_error`, and sets `_ready` when the store can serve. Until then
`is_ready` is False and the calls that need the store answer 503 (`_require_ready`).
`_stop` asks the thread to end (`_closing`) and waits for it.
"""

from __future__ import annotations

import threading

from service.errors import ServiceUnavailableError

__all__ = ["StartsInBackground"]


class StartsInBackground:
    _thread_name = "item-store"
    _waiting = "the item store is starting"  # the 503's message while nothing failed

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._load_error: str | None = None  # why it is not ready yet, after a failure
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread; `is_ready` turns True when the store can serve."""
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def _require_ready(self) -> None:
        if not self.is_ready:
            raise ServiceUnavailableError(self._load_error or self._waiting)
