"""Clients that go away without saying so: one stops reading, one leaves before any answer.

Both talk over a raw socket, so the test decides exactly what the client does with the
connection: keep it open and never read again, or close it (politely or with a reset) while
the service still waits for its first token. Either way the run must be cancelled, which the
scripted upstream sees as a closed request, and the service's one run slot (MAX_CONCURRENT_RUNS
is 1) must be free for the next client.

The stalled client advertises a small receive window and a small segment size. Linux sizes a
new connection's send buffer from its segment size, which on loopback is 64 KiB: ~3 MB of
buffer the service could fill before a write blocks. With 536-byte segments it is ~120 KB.
"""

from __future__ import annotations

import gc
import json
import logging
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from support.service import RunningService, behind, running_service
from support.upstream import Hang, Reply, ScriptedUpstream

TEAM = "autogen-team"
QUESTION = [{"role": "user", "content": "Tell me a very long story."}]
SEND_TIMEOUT = 1.0
# 20,000 tokens of 200 characters. With no delay at all the upstream would write the whole
# reply into socket buffers in a fraction of a second and could not tell a cancelled run from
# a finished one; half a millisecond per token keeps it sending for ten seconds or more.
LONG_REPLY = Reply(["word " * 40] * 20_000, delay=0.0005)
CLIENT_BUFFER = 4096  # bytes the stalled client's kernel may hold for it
CLIENT_SEGMENT = 536  # bytes; the smallest segment size every TCP stack accepts


@pytest.fixture
def service(upstream: ScriptedUpstream) -> Iterator[RunningService]:
    with running_service(
        **behind(upstream.base_url),
        SEND_TIMEOUT=SEND_TIMEOUT,
        MAX_CONCURRENT_RUNS=1,
    ) as running:
        yield running


def open_chat(service: RunningService, *, stream: bool, receive_buffer: int = 0) -> socket.socket:
    """Sends a chat request on a fresh connection and returns the socket, response unread."""
    body = json.dumps({"model": TEAM, "messages": QUESTION, "stream": stream}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    client = socket.socket()
    if receive_buffer:
        # Set before connecting, so the window the service may fill stays this small.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, CLIENT_SEGMENT)
    client.settimeout(10)
    client.connect(("127.0.0.1", service.port))
    client.sendall(head.encode() + body)
    return client


def read_past_headers(client: socket.socket, at_least: int) -> bytes:
    """Reads the response head and then at least `at_least` bytes of the body."""
    received = b""
    while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < at_least:
        piece = client.recv(1024)
        assert piece, f"the service closed the connection early: {received!r}"
        received += piece
    return received


def assert_serves_the_next_client(service: RunningService, upstream: ScriptedUpstream) -> None:
    assert httpx2.get(f"{service.url}/readyz", timeout=5).json()["status"] == "ready"
    upstream.script(Reply.text("Next draft."), Reply.text("Next answer."))
    body: dict[str, Any] = {"model": TEAM, "messages": QUESTION}
    response = httpx2.post(f"{service.base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text  # a 429 means the old run still holds
    assert response.json()["choices"][0]["message"]["content"] == "Next answer."


def stall(service: RunningService, upstream: ScriptedUpstream) -> socket.socket:
    """Opens a long stream, reads its head and a little, then stops reading (socket kept)."""
    upstream.script(LONG_REPLY)
    client = open_chat(service, stream=True, receive_buffer=CLIENT_BUFFER)
    head = read_past_headers(client, at_least=512)
    assert head.startswith(b"HTTP/1.1 200") and b"reasoning_content" in head
    return client


def test_client_that_stops_reading_has_its_run_cancelled_and_upstream_closed(
    service: RunningService, upstream: ScriptedUpstream
) -> None:
    # The upstream stream must be closed by the run's cancellation, not whenever a garbage
    # collection happens to finalise an abandoned generator: without the collector, a leak
    # shows every time instead of now and then.
    gc.disable()
    client = None
    try:
        client = stall(service, upstream)
        stalled_at = time.monotonic()
        # Nothing but SEND_TIMEOUT can tell the service that this client is gone.
        assert upstream.wait_for(lambda: upstream.disconnects, timeout=SEND_TIMEOUT + 4)
        noticed = time.monotonic() - stalled_at
        assert upstream.wait_for(lambda: upstream.active == 0, timeout=2.0)
        assert upstream.disconnects == [0]
        assert len(upstream.requests) == 1  # the reviewer was never asked

        assert_serves_the_next_client(service, upstream)
    finally:
        gc.enable()
        if client is not None:
            client.close()
    print(f"upstream closed {noticed:.2f} s after the client stopped reading")


def test_client_that_stops_reading_is_dropped_quietly(
    service: RunningService, upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    client = stall(service, upstream)
    try:
        time.sleep(SEND_TIMEOUT + 2)
        rest = b""
        while piece := client.recv(65536):  # what was buffered, then the service's close
            rest += piece
    finally:
        client.close()
    assert b"data: [DONE]" not in rest  # cut off, not served to the end once reading resumed
    # Dropping a stalled client is routine (README: "Running in production"), not a crash: no
    # error from the service and no traceback. uvicorn's own one-line complaint about a response
    # left unfinished is the one error an ASGI app cannot avoid when it abandons a stream.
    errors = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and (r.exc_info or r.name.startswith("fastapi_autogen_team"))
    ]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]
    assert_serves_the_next_client(service, upstream)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_client_gone_before_first_byte_stops_the_run_at_once(
    service: RunningService, upstream: ScriptedUpstream, stream: bool, reset: bool
) -> None:
    upstream.script(Hang())
    client = open_chat(service, stream=stream)
    assert upstream.wait_for(lambda: upstream.requests, timeout=5.0)
    if reset:
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    closed_at = time.monotonic()

    assert upstream.wait_for(lambda: upstream.disconnects, timeout=1.0)
    noticed = time.monotonic() - closed_at
    time.sleep(0.3)  # long enough for a retry or the next agent's call to show up
    assert len(upstream.requests) == 1
    assert_serves_the_next_client(service, upstream)
    print(f"upstream closed {noticed:.3f} s after the client")
