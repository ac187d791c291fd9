"""A lean OpenAI-compatible streaming upstream, and an OTLP sink, for the benchmark.

Why not `tests/support/upstream.py`: its `ScriptedUpstream` polls every pause at 5 ms to notice
a client that left (200,000 wake-ups a second at 1,000 streams) and runs in a thread of the
process that imports it. The benchmark needs an upstream that is never the bottleneck, so this
one runs alone in its own process (on uvloop when installed), builds each reply's chunks once
and sleeps once per token. It speaks the same wire format: SSE over chunked HTTP/1.1.

A streamed reply is `max_tokens` tokens (the request's, else `--tokens`): the first token
`--interval` seconds after the request, then one every `--interval` seconds, on a fixed
schedule so a late wake-up does not slow the rate. The usage chunk follows when asked for.
`GET /bench/stats` reports the chat requests and token chunks sent so far; `GET /bench/timings`
returns, and forgets, each streamed request's arrival and first-token times (`time.perf_counter`,
the system-wide monotonic clock on Linux, so the load generator's times compare with them).

The sink answers 200 with an empty body to every request: a stand-in OTLP/HTTP collector.
On start the process prints one JSON line, `{"upstream": port, "sink": port}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

HOST = "127.0.0.1"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]
TOKEN = " word"


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.chunks = 0
        self.timings: list[tuple[float, float]] = []

    def take_timings(self) -> bytes:
        timings, self.timings = self.timings, []
        return json.dumps(timings).encode()

    def body(self) -> bytes:
        return json.dumps({"requests": self.requests, "chunks": self.chunks}).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


class Reply:
    """Every chunk of one streamed reply, encoded once."""

    def __init__(self, number: int, model: str, tokens: int, include_usage: bool) -> None:
        head = (
            f'data: {{"id":"chatcmpl-bench-{number}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{json.dumps(model)},"choices":'
        ).encode()
        delta = head + b'[{"index":0,"delta":'
        tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
        self.tokens = tokens
        self.first = _STREAM_HEAD + _chunk(delta + b'{"role":"assistant","content":""}' + tail)
        self.token = _chunk(delta + b'{"content":' + json.dumps(TOKEN).encode() + b"}" + tail)
        end = delta + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
        if include_usage:
            usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
            end += head + b'[],"usage":' + json.dumps(usage).encode() + b"}\n\n"
        self.last = _chunk(end + b"data: [DONE]\n\n") + b"0\r\n\r\n"


class Upstream:
    def __init__(self, interval: float, tokens: int) -> None:
        self.interval = interval
        self.tokens = tokens
        self.stats = Stats()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while await self._serve_one(reader, writer):
                pass
        writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, _, fields = head.decode("latin-1").partition("\r\n")
        length = 0
        for line in fields.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
        method, path, _ = request_line.split(" ", 2)

        if method == "POST" and path.startswith("/v1/chat/completions"):
            await self._chat(json.loads(body), writer)
        elif path.startswith("/bench/timings"):
            writer.write(_response("200 OK", self.stats.take_timings()))
        elif path.startswith("/bench/stats"):
            writer.write(_response("200 OK", self.stats.body()))
        elif path.startswith("/v1/models"):
            writer.write(_response("200 OK", b'{"object":"list","data":[]}'))
        else:
            writer.write(_response("404 Not Found", b'{"error":{"message":"no route"}}'))
        await writer.drain()
        return True

    async def _chat(self, body: dict[str, object], writer: asyncio.StreamWriter) -> None:
        arrived = time.perf_counter()
        self.stats.requests += 1
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or self.tokens
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        reply = Reply(self.stats.requests, str(body.get("model")), int(limit), include_usage)
        if not body.get("stream"):
            await asyncio.sleep(self.interval * reply.tokens)
            writer.write(_response("200 OK", _whole(reply.tokens, str(body.get("model")))))
            return

        loop = asyncio.get_running_loop()
        start = loop.time()
        writer.write(reply.first)
        for number in range(1, reply.tokens + 1):
            wait = start + number * self.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if writer.is_closing():
                raise ConnectionResetError("the client closed the stream")
            writer.write(reply.token)
            if number == 1:
                self.stats.timings.append((arrived, time.perf_counter()))
            self.stats.chunks += 1
            await writer.drain()
        writer.write(reply.last)


def _whole(tokens: int, model: str) -> bytes:
    message = {"role": "assistant", "content": TOKEN * tokens}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
    body = {"id": "chatcmpl-bench", "object": "chat.completion", "model": model}
    return json.dumps({**body, "choices": [choice], "usage": usage}).encode()


async def _sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(_response("200 OK", b"", "application/x-protobuf"))
            await writer.drain()
    writer.close()


class Handlers:
    """Connection handlers as our own tasks, so stopping can cancel them quietly.

    On Python 3.11 a handler task that `start_server` made logs an error when cancelled, and
    streams still open at the end of a run are cancelled every time.
    """

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def of(self, handler: Handler) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.create_task(handler(reader, writer))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        return accept

    async def cancel(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve(interval: float, tokens: int) -> None:
    upstream, handlers = Upstream(interval, tokens), Handlers()
    chat = await asyncio.start_server(handlers.of(upstream.handle), HOST, 0, backlog=4096)
    sink = await asyncio.start_server(handlers.of(_sink), HOST, 0, backlog=256)
    ports = {"upstream": chat.sockets[0].getsockname()[1], "sink": sink.sockets[0].getsockname()[1]}
    print(json.dumps(ports), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    chat.close()
    sink.close()
    await handlers.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between tokens")
    parser.add_argument("--tokens", type=int, default=40, help="tokens when max_tokens is unset")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.interval, args.tokens))
    else:
        uvloop.run(serve(args.interval, args.tokens))


if __name__ == "__main__":
    main()
