"""Overload and slow clients: a full queue refuses a POST before reading its body, a stalled
upload gets 408 and is never counted as a request the batcher should wait for."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import numpy as np
import pytest
from starlette.types import Message, Receive, Scope, Send

from service.api.middleware import Admission, RequestMetrics
from service.inference.arrivals import Arrivals
from service.inference.batcher import MicroBatcher

POST = {"type": "http", "method": "POST", "path": "/embed", "headers": [], "query_string": b""}


async def untouched_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the request should not have reached the app")


async def never_read() -> Message:
    raise AssertionError("the body should not have been read")


def test_a_post_is_refused_before_its_body_is_read_while_the_queue_is_full() -> None:
    sent: list[Message] = []

    async def scenario() -> None:
        batcher = MicroBatcher(lambda x: x, max_batch_size=2, queue_size=2)  # not started:
        waiting = asyncio.ensure_future(batcher.embed(np.zeros((2, 3), np.float32)))
        await asyncio.sleep(0)  # its two items wait in the queue, which is now full
        admission = Admission(untouched_app, batcher=lambda: batcher)

        async def send(message: Message) -> None:
            sent.append(message)

        await admission(POST, never_read, send)
        waiting.cancel()

    asyncio.run(scenario())

    assert sent[0]["status"] == 429
    assert (b"retry-after", b"1") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"]["code"] == "too_many_requests"


def test_a_request_is_on_its_way_from_its_whole_body_to_queueing_its_work() -> None:
    arrivals = Arrivals()
    seen: list[int] = []
    parts = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.request", "body": b"}", "more_body": False},
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            seen.append(arrivals())
            if not (await receive()).get("more_body"):
                break
        seen.append(arrivals())
        arrivals.queued()  # what MicroBatcher.embed says
        seen.append(arrivals())

    async def receive() -> Message:
        return parts.pop(0)

    async def send(message: Message) -> None:
        pass

    asyncio.run(RequestMetrics(app, arrivals=arrivals)(POST, receive, send))

    # before the first part, between the parts, after the last, once its work is queued
    assert seen == [0, 0, 1, 0]
    assert arrivals() == 0


def test_a_request_that_ends_without_queueing_work_is_no_longer_on_its_way() -> None:
    arrivals = Arrivals()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert arrivals() == 1

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        pass

    asyncio.run(RequestMetrics(app, arrivals=arrivals)(POST, receive, send))
    assert arrivals() == 0


@pytest.mark.slow
def test_a_stalled_upload_gets_408_after_the_body_timeout(start_server) -> None:
    server = start_server(env={"COREL_BODY_TIMEOUT_S": "1"})
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"inputs": ['
        )
        started = time.monotonic()
        answer = read_response(conn)
        waited = time.monotonic() - started

    assert answer.startswith("HTTP/1.1 408")
    assert 0.9 < waited < 5
    assert json.loads(answer.split("\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def read_response(conn: socket.socket) -> str:
    """One whole HTTP response: headers, then as many bytes as Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += conn.recv(65536)
    return (head + b"\r\n\r\n" + body).decode()


@pytest.mark.slow
def test_headers_that_never_finish_get_408_and_the_connection_closes(start_server) -> None:
    server = start_server(env={"COREL_HEADER_TIMEOUT_S": "1"})
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and then nothing
        started = time.monotonic()
        answer = read_response(conn)
        waited = time.monotonic() - started
        closed = conn.recv(1) == b""

    assert answer.startswith("HTTP/1.1 408")
    assert json.loads(answer.split("\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert 0.9 < waited < 5 and closed
    with server.client() as client:  # the server itself is fine
        assert client.get("/healthz").status_code == 200
