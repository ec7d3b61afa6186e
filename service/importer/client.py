"""The service seen by the importer: GET /model and POST /items, with retries.

Retried for up to five minutes, with exponential backoff (or the server's Retry-After): 429
and 503 answers and transport errors (refused or dropped connections, timeouts). A POST
whose answer was lost may have been committed: the server stores each batch atomically, so
the retry comes back as a 409 naming every id of the batch, which counts as "already
stored". Any other 4xx or 5xx stops the import with the server's message.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import httpx
import numpy as np
import orjson

from service.importer.errors import ImportFailed
from service.importer.sources import ModelInput, Rows

__all__ = ["ServiceClient", "encode_batch"]

GIVE_UP_AFTER = 300.0  # seconds of retrying one request: long enough for a server restart
MAX_BACKOFF = 30.0
RETRIED_STATUSES = {429, 503}
_CONFLICT_COUNT = re.compile(r"^(\d+) item id\(s\) already exist")


def encode_batch(
    rows: Rows,
    ids: list[str],
    *,
    store_input: bool,
    label: str | None = None,
    truncate: bool = True,
) -> bytes:
    """The POST /items body: each row as a `tensor` input, uint8 when every value is an
    integer in 0..255, else float32 (little-endian), shaped by the model's default; texts
    as `text` inputs, with the request's `truncate`."""
    if isinstance(rows.values, list):
        inputs = [{"text": text} for text in rows.values]
        return orjson.dumps({"items": _items(rows, ids, inputs, store_input, label),
                             "truncate": truncate})  # fmt: skip
    values = rows.values.reshape(len(rows.values), -1)
    if values.dtype == np.uint8 or _fits_uint8(values):
        packed, dtype = values.astype(np.uint8, copy=False), "uint8"
    else:
        if not np.isfinite(values).all():
            bad = rows.start + int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
            raise ImportFailed(f"row {bad} has NaN or infinite values")
        packed, dtype = values.astype("<f4", copy=False), "float32"
    tensors = [
        {"tensor": {"b64": base64.b64encode(row.tobytes()).decode(), "dtype": dtype}}
        for row in packed
    ]
    return orjson.dumps({"items": _items(rows, ids, tensors, store_input, label)})


def _items(
    rows: Rows,
    ids: list[str],
    inputs: list[dict[str, Any]],
    store_input: bool,
    label: str | None,
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for n, item_id in enumerate(ids):
        item: dict[str, Any] = {"id": item_id, "input": inputs[n], "store_input": store_input}
        item_label = label or rows.labels[n]
        if item_label is not None:
            item["label"] = item_label
        if rows.metadata is not None:
            item["metadata"] = rows.metadata[n]
        items.append(item)
    return items


def _fits_uint8(values: np.ndarray) -> bool:
    if values.dtype.kind in "iu":
        return bool(values.min() >= 0 and values.max() <= 255)
    with np.errstate(invalid="ignore"):
        return bool(((values >= 0) & (values <= 255) & (values == np.round(values))).all())


class ServiceClient:
    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 300) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=10)
        )

    def close(self) -> None:
        self.http.close()

    def model_input(self) -> ModelInput:
        """What the served model takes; fails at once if nothing listens at the URL."""
        response = self._send("GET", "/model", retry_connect=False)
        self._raise_for(response)
        spec = response.json()["manifest"]["input"]
        return ModelInput(spec["kind"], tuple(spec["shape"]), bool(spec.get("resize", False)))

    def post_items(self, body: bytes, count: int, first_row: int) -> tuple[int, int]:
        """POST one batch of `count` items: how many were stored now (0: all were already),
        and how many of those texts the server cut to the model's max_length."""
        response = self._send(
            "POST", "/items", content=body, headers={"Content-Type": "application/json"}
        )
        if response.status_code == 201:
            return count, len(response.json().get("truncated", []))
        if response.status_code == 409:
            self._conflict(response, count, first_row)
            return 0, 0
        self._raise_for(response)
        raise ImportFailed(f"POST /items answered {response.status_code}, not 201")

    # -- the request loop ---------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, retry_connect: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """The response, after retrying 429/503 and transport errors for up to GIVE_UP_AFTER
        seconds (the server's Retry-After when it gives one, else 0.5, 1, 2, ... 30 s)."""
        deadline, attempt = time.monotonic() + GIVE_UP_AFTER, 0
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                if not retry_connect:
                    raise ImportFailed(
                        f"cannot connect to {self.url} ({exc}): is the service running?"
                    ) from exc
                problem, wait = f"cannot connect ({exc})", _backoff(attempt)
            except httpx.TransportError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", _backoff(attempt)
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return response
                problem = f"{response.status_code} {_message(response)}"
                wait = _retry_after(response) or _backoff(attempt)
            if time.monotonic() + wait > deadline:
                raise ImportFailed(
                    f"{method} {path}: gave up after {attempt + 1} tries in "
                    f"{GIVE_UP_AFTER:.0f} s; last: {problem}"
                )
            time.sleep(wait)
            attempt += 1

    @staticmethod
    def _conflict(response: httpx.Response, count: int, first_row: int) -> None:
        """A 409 for every id of the batch: stored before (its 201 was lost). Else: fail."""
        error = _error(response)
        details = error.get("details") or {}
        match = _CONFLICT_COUNT.match(str(error.get("message", "")))
        existing = details.get("count", int(match.group(1)) if match else None)
        if existing == count:
            return
        ids = ", ".join(map(str, details.get("ids", [])[:5]))
        raise ImportFailed(
            f"rows {first_row}..{first_row + count - 1}: 409 {error.get('message')}"
            + (f" (e.g. {ids})" if ids else "")
            + "; other items hold these ids: give another --id-prefix"
        )

    def _raise_for(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        hint = {
            401: "; give --api-key or set COREL_API_KEY",
            413: "; give a smaller --batch-size",
        }.get(response.status_code, "")
        raise ImportFailed(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {_message(response)}{hint}"
        )


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _message(response: httpx.Response) -> str:
    error = _error(response)
    if "message" in error:
        return f"{error.get('code', '')}: {error['message']}".lstrip(": ")
    return response.text[:200].replace("\n", " ") or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF)
    except ValueError:
        return None  # absent, or an HTTP date: back off as usual


def _backoff(attempt: int) -> float:
    return float(min(0.5 * 2**attempt, MAX_BACKOFF))
