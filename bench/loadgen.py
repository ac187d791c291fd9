"""The load generator: closed-loop streamed chat requests over raw sockets, in its own process.

It is a process of its own so that its CPU is not the service's, and it speaks HTTP/1.1 on
plain asyncio sockets (on uvloop when installed) because a full client (httpx2 and the openai
SDK) costs more per chunk than the service under test would, and would hide it.

Each of `concurrency` workers starts `ramp * i / concurrency` seconds in, keeps one keep-alive
connection, and sends one request after another until it has sent `requests` or `duration`
seconds have passed since the run began. Time to first token is from writing the request to
reading the first event whose delta has non-empty `content` or `reasoning_content`.

Usage: `python loadgen.py '<spec JSON>'`; prints one JSON object: one row per request,
`[start, ttft, total, chunks, error]` (seconds; `start` is when the request was written,
from `origin`, the run's start on `time.perf_counter`; error "" when it succeeded), and the
generator's own CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

DELTA = re.compile(rb'"(?:reasoning_)?content":"[^"]')


@dataclass
class Spec:
    port: int
    body: dict[str, Any]
    concurrency: int = 1
    requests: int = 1
    duration: float = 1e9
    ramp: float = 0.0
    timeout: float = 60.0
    path: str = "/v1/chat/completions"


@dataclass
class Result:
    start: float
    ttft: float = -1.0
    total: float = -1.0
    chunks: int = 0
    error: str = ""

    def row(self) -> list[Any]:
        return [
            round(self.start, 6),
            round(self.ttft, 6),
            round(self.total, 6),
            self.chunks,
            self.error,
        ]


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    keep_alive: bool = True


@dataclass
class Worker:
    spec: Spec
    request: bytes
    results: list[Result] = field(default_factory=list)
    connection: Connection | None = None
    origin: float = 0.0

    async def run(self, index: int, origin: float, deadline: float) -> None:
        self.origin = origin
        await asyncio.sleep(self.spec.ramp * index / self.spec.concurrency)
        for _ in range(self.spec.requests):
            if time.perf_counter() >= deadline:
                break
            result = Result(time.perf_counter() - origin)
            self.results.append(result)
            try:
                async with asyncio.timeout(self.spec.timeout):
                    await self._one(result)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                result.error = result.error or f"{type(error).__name__}: {error}"
            if result.error:
                self._close()
        self._close()

    async def _one(self, result: Result) -> None:
        if self.connection is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.spec.port)
            self.connection = Connection(reader, writer)
        reader, writer = self.connection.reader, self.connection.writer
        sent = time.perf_counter()
        result.start = sent - self.origin
        writer.write(self.request)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = head[9:12]
        self.connection.keep_alive = "connection: close" not in head
        if "transfer-encoding: chunked" not in head:
            length = re.search(r"content-length: *(\d+)", head)
            body = await reader.readexactly(int(length.group(1)) if length else 0)
            result.error = f"HTTP {status}: {body[:200].decode(errors='replace')}"
            return
        done = await self._read_events(reader, sent, result)
        result.total = time.perf_counter() - sent
        if status != "200":
            result.error = f"HTTP {status}"
        elif not done:
            result.error = result.error or "the stream ended without [DONE]"
        if not self.connection.keep_alive:
            self._close()

    async def _read_events(self, reader: asyncio.StreamReader, sent: float, result: Result) -> bool:
        buffer = b""
        done = False
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("the server closed the connection mid-stream")
            size = int(line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return done
            buffer += data[:-2]
            while (end := buffer.find(b"\n\n")) >= 0:
                event, buffer = buffer[:end], buffer[end + 2 :]
                if event.startswith(b"data: [DONE]"):
                    done = True
                elif event.startswith(b'data: {"error"'):
                    result.error = event[6:206].decode(errors="replace")
                elif DELTA.search(event):
                    result.chunks += 1
                    if result.ttft < 0:
                        result.ttft = time.perf_counter() - sent

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.writer.close()
            self.connection = None


def _request(spec: Spec) -> bytes:
    body = json.dumps(spec.body).encode()
    head = (
        f"POST {spec.path} HTTP/1.1\r\nhost: 127.0.0.1:{spec.port}\r\n"
        f"content-type: application/json\r\naccept: text/event-stream\r\n"
        f"authorization: Bearer bench\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run(spec: Spec) -> dict[str, Any]:
    request = _request(spec)
    workers = [Worker(spec, request) for _ in range(spec.concurrency)]
    origin = time.perf_counter()
    deadline = origin + spec.duration
    await asyncio.gather(*(w.run(i, origin, deadline) for i, w in enumerate(workers)))
    wall = time.perf_counter() - origin
    rows = [result.row() for worker in workers for result in worker.results]
    cpu = os.times()
    return {"rows": rows, "wall": wall, "cpu": cpu.user + cpu.system, "origin": origin}


def main() -> None:
    spec = Spec(**json.loads(sys.argv[1]))
    try:
        import uvloop
    except ImportError:
        output = asyncio.run(run(spec))
    else:
        output = uvloop.run(run(spec))
    json.dump(output, sys.stdout)


if __name__ == "__main__":
    main()
