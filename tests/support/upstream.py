"""A scripted OpenAI-compatible chat upstream on 127.0.0.1, for tests.

Design record:
- A small HTTP/1.1 server on asyncio streams rather than uvicorn: the faults need the raw socket
  (reset mid-stream, never answer, notice a client's FIN while the server sleeps), which an ASGI
  server hides behind its own error handling.
- It runs its own event loop in a daemon thread, so a sync client in the test thread and an async
  client on the test's loop both work without starving the server.
- Each chat request consumes one scripted step, in order. With none queued, the reply is
  ``Reply N to: <first five words of the last user message>``, N counting chat requests from 1.
- Usage defaults to word counts: prompt = words in every message's text, completion = words in the
  reply (for tool calls, in the names and argument strings). Steps can override both.
- While a response is pending the connection is polled for EOF; a client that leaves before the
  server has finished is recorded in ``disconnects``. A close the script chose (``Drop``) is not.
"""

import asyncio
import contextlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, Self

import anyio

JSON = dict[str, Any]

_HOST = "127.0.0.1"
_POLL = 0.005  # seconds; far below the tolerances tests put on disconnect detection
_THREAD_TIMEOUT = 5.0
_ARGUMENT_PIECE = 8  # characters of tool-call arguments per streamed delta
_DEFAULT_WORDS = 5


@dataclass(frozen=True)
class Reply:
    """Assistant text, one chunk per token; each token is sent `delay` seconds after the last."""

    tokens: Sequence[str]
    delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"

    def __post_init__(self) -> None:
        if isinstance(self.tokens, str):
            raise TypeError("Reply tokens must be a list of strings; use Reply.text() for text.")

    @classmethod
    def text(cls, text: str, delay: float = 0.0) -> "Reply":
        """Split `text` into word tokens that keep their leading whitespace."""
        return cls(_split_words(text), delay=delay)


@dataclass(frozen=True)
class ToolCall:
    """One function call; a mapping of `arguments` is sent as JSON text."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message with `tool_calls`, streamed in OpenAI's indexed delta format."""

    calls: Sequence[ToolCall]
    delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class HttpError:
    """An OpenAI-shaped error response, with `Retry-After` (seconds) when given."""

    status: int = 500
    message: str = "The scripted upstream failed this request."
    retry_after: float | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer, until the client leaves or the server stops."""


@dataclass(frozen=True)
class Drop:
    """Stream `tokens`, then reset the connection: no final chunk, no [DONE].

    A non-streaming request is reset without any response.
    """

    tokens: Sequence[str] = ("Partial", " answer")
    delay: float = 0.0


@dataclass(frozen=True)
class Malformed:
    """Stream `tokens`, then the line ``data: {not json``, then end normally (or reset if `close`).

    A non-streaming request gets a 200 whose body is not JSON.
    """

    tokens: Sequence[str] = ("Partial",)
    delay: float = 0.0
    close: bool = False


@dataclass(frozen=True)
class RawStream:
    """A 200 event stream whose body is exactly `pieces`, each sent as one HTTP chunk, for
    byte-level SSE cases (line ends, comments, events split across reads). Streaming only.

    `then` is what follows the pieces: the body's proper end, nothing at all (the response
    stays open until the client leaves), or a reset connection. `headers` are added."""

    pieces: Sequence[bytes]
    then: Literal["end", "hang", "reset"] = "end"
    headers: Mapping[str, str] = field(default_factory=dict)


Step = Reply | ToolCalls | HttpError | Hang | Drop | Malformed | RawStream
_Answer = Reply | ToolCalls | Drop | Malformed
_Outcome = Literal["sent", "gone", "closed"]


@dataclass(frozen=True)
class RecordedRequest:
    """A chat request as received; `received_at` is `time.monotonic()`."""

    body: JSON
    headers: dict[str, str]
    received_at: float
    connection: int

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def last_user_text(self) -> str:
        return _last_user_text(self.body.get("messages") or [])


def default_reply_text(messages: Sequence[Mapping[str, object]], number: int) -> str:
    """The text of the reply to the `number`-th chat request when no step is scripted."""
    words = _last_user_text(messages).split()[:_DEFAULT_WORDS]
    return " ".join(["Reply", str(number), "to:", *words])


class ScriptedUpstream:
    """OpenAI-compatible chat upstream on 127.0.0.1 that plays scripted steps and records traffic.

    Use it as a context manager; `base_url` ends in ``/v1`` like OpenAI's.
    """

    def __init__(self, *, models: Sequence[str] = ("scripted",)) -> None:
        if not models:
            raise ValueError("ScriptedUpstream needs at least one model name to list.")
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[int] = []  # indexes into `requests`
        self.active = 0
        self.errors: list[Exception] = []
        self._models = tuple(models)
        self._steps: deque[Step] = deque()
        self._port: int | None = None
        self._connections = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("ScriptedUpstream is not running; use it in a `with` block.")
        return f"http://{_HOST}:{self._port}/v1"

    @property
    def pending(self) -> int:
        """Scripted steps not yet consumed."""
        return len(self._steps)

    def script(self, *steps: Step) -> None:
        """Queue steps; each chat request consumes the oldest one."""
        self._steps.extend(steps)

    def wait_for(self, predicate: Callable[[], object], timeout: float = 1.0) -> bool:
        """Poll `predicate` from a sync test; False if still falsy after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Poll `predicate` without blocking the test's loop; bound it with `anyio.fail_after`."""
        # Polling, not an Event: the predicate reads any state the server thread mutates.
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(_POLL)

    def __enter__(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("A ScriptedUpstream starts only once; create a new one.")
        self._thread = threading.Thread(target=self._run, name="scripted-upstream", daemon=True)
        self._thread.start()
        self._ready.wait(_THREAD_TIMEOUT)
        if self._port is None:
            self.__exit__(None, None, None)
            cause = self.errors[0] if self.errors else None
            raise RuntimeError("ScriptedUpstream could not listen on 127.0.0.1.") from cause
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            # The loop may already be closed if the server thread died on its own.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(_THREAD_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("ScriptedUpstream's thread did not stop within 5 seconds.")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # reported by __enter__ rather than lost with the thread
            self.errors.append(exc)
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accept, _HOST, 0)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()

        server.close()
        # Hanging handlers never return on their own, and from Python 3.12 wait_closed() waits
        # for every connection, so they are cancelled first.
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task rather than start_server's: on Python 3.11 that one logs an error when
        # cancelled, and hanging connections are cancelled at every shutdown.
        self._connections += 1
        task = asyncio.create_task(self._handle(_Connection(reader, writer, self._connections)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, conn: "_Connection") -> None:
        try:
            while await self._serve_one(conn):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left in the middle of a request
        except Exception as exc:  # a fault in this fake must fail the test, not vanish in a log
            self.errors.append(exc)
        finally:
            await conn.close()

    async def _serve_one(self, conn: "_Connection") -> bool:
        """Answer one request; True when the connection can carry another."""
        request = await conn.read_request()
        if request is None:
            return False

        route = (request.method, request.path)
        if route == ("POST", "/v1/chat/completions"):
            reusable = await self._chat(conn, request)
        elif route == ("GET", "/v1/models"):
            reusable = await conn.respond(200, _json(self._models_body()))
        else:
            message = f"ScriptedUpstream has no route {request.method} {request.path}."
            reusable = await conn.respond(404, _error_json(404, message))
        return reusable and request.keep_alive and not conn.gone()

    async def _chat(self, conn: "_Connection", request: "_Request") -> bool:
        try:
            body = json.loads(request.body)
        except ValueError:
            return await conn.respond(400, _error_json(400, "The request body is not JSON."))
        if not isinstance(body, dict):
            return await conn.respond(400, _error_json(400, "The request body must be an object."))

        record = RecordedRequest(body, request.headers, time.monotonic(), conn.number)
        self.requests.append(record)
        number = len(self.requests)
        outcome = await self._play(conn, self._next_step(body, number), body, number)
        if outcome == "gone":
            self.disconnects.append(number - 1)
        return outcome == "sent"

    def _next_step(self, body: JSON, number: int) -> Step:
        try:
            return self._steps.popleft()
        except IndexError:
            return Reply.text(default_reply_text(body.get("messages") or [], number))

    async def _play(self, conn: "_Connection", step: Step, body: JSON, number: int) -> _Outcome:
        if isinstance(step, HttpError):
            headers = {} if step.retry_after is None else {"retry-after": f"{step.retry_after:g}"}
            sent = await conn.respond(step.status, _error_json(step.status, step.message), headers)
            return "sent" if sent else "gone"
        if isinstance(step, Hang):
            await conn.pause(math.inf)
            return "gone"

        if isinstance(step, RawStream):
            events = [(0.0, _chunk(piece)) for piece in step.pieces]
            if step.then == "end":
                events.append((0.0, b"0\r\n\r\n"))
            elif step.then == "hang":
                events.append((math.inf, b""))
            plan = _Plan(events, reset=step.then == "reset")
            return await self._stream(conn, plan, step.headers)

        model = str(body.get("model") or self._models[0])
        completion = _Completion(f"chatcmpl-scripted-{number}", model)
        if body.get("stream"):
            return await self._stream(conn, _stream_plan(step, completion, body, number))
        return await _answer_whole(conn, step, completion, body, number)

    async def _stream(
        self, conn: "_Connection", plan: "_Plan", headers: Mapping[str, str] | None = None
    ) -> _Outcome:
        self.active += 1
        try:
            if not await conn.start_stream(headers):
                return "gone"
            for delay, data in plan.events:
                if not (await conn.pause(delay) and await conn.send(data)):
                    return "gone"
            if plan.reset:
                await conn.reset()
                return "closed"
            return "sent"
        finally:
            self.active -= 1

    def _models_body(self) -> JSON:
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "scripted-upstream"}
            for name in self._models
        ]
        return {"object": "list", "data": models}


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


class _Connection:
    """One accepted TCP connection: HTTP/1.1 framing and noticing that the client left."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.number = number

    def gone(self) -> bool:
        # HTTP/1.1 clients send nothing while awaiting a response, so EOF here means they left.
        reader = self._reader
        return reader.at_eof() or reader.exception() is not None or self._writer.is_closing()

    async def read_request(self) -> _Request | None:
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None

        line, *lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _version = line.split(" ", 2)
        headers = {}
        for header in lines:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            raise ValueError("ScriptedUpstream reads only request bodies with a Content-Length.")
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return _Request(method, target.partition("?")[0], headers, body)

    async def respond(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> bool:
        fields = {"content-type": "application/json", "content-length": str(len(body))}
        return await self.send(_head(status, {**fields, **(headers or {})}) + body)

    async def start_stream(self, headers: Mapping[str, str] | None = None) -> bool:
        fields = {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
        }
        return await self.send(_head(200, {**fields, **(headers or {})}))

    async def send(self, data: bytes) -> bool:
        """Write `data`; False when the client has already gone."""
        if self.gone():
            return False
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError:
            return False
        return True

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False as soon as the client has gone."""
        deadline = time.monotonic() + seconds
        while not self.gone():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(remaining, _POLL))
        return False

    async def reset(self) -> None:
        """Close abruptly, once what was written has left the buffer."""
        transport = self._writer.transport
        # With no high-water mark, drain() returns only once the buffer is empty.
        transport.set_write_buffer_limits(high=0)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
        transport.abort()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


@dataclass(frozen=True)
class _Completion:
    """The identity every chunk of one response shares."""

    id: str
    model: str
    created: int = field(default_factory=lambda: int(time.time()))

    def chunk(self, delta: JSON, finish_reason: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("chat.completion.chunk"), "choices": [choice]}

    def usage_chunk(self, usage: JSON) -> JSON:
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": usage}

    def whole(self, message: JSON, finish_reason: str, usage: JSON) -> JSON:
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("chat.completion"), "choices": [choice], "usage": usage}

    def _head(self, kind: str) -> JSON:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


@dataclass(frozen=True)
class _Plan:
    """Chunked-body pieces, each sent after its delay in seconds, then an end or a reset."""

    events: list[tuple[float, bytes]]
    reset: bool = False


def _stream_plan(step: _Answer, c: _Completion, body: JSON, number: int) -> _Plan:
    if isinstance(step, ToolCalls):
        usage = _usage(body, _tool_text(step), step.prompt_tokens, step.completion_tokens)
        return _Plan(_tool_call_events(c, step, number) + _ending(c, "tool_calls", usage, body))

    events = _text_events(c, step.tokens, step.delay)
    if isinstance(step, Drop):
        return _Plan(events, reset=True)
    if isinstance(step, Malformed):
        events.append((0.0, _chunk(b"data: {not json\n\n")))
        if step.close:
            return _Plan(events, reset=True)
        return _Plan(events + _ending(c, "stop", _usage(body, "".join(step.tokens)), body))

    usage = _usage(body, "".join(step.tokens), step.prompt_tokens, step.completion_tokens)
    return _Plan(events + _ending(c, step.finish_reason, usage, body))


def _text_events(c: _Completion, tokens: Sequence[str], delay: float) -> list[tuple[float, bytes]]:
    first = (0.0, _sse(c.chunk({"role": "assistant", "content": ""})))
    return [first, *((delay, _sse(c.chunk({"content": token}))) for token in tokens)]


def _tool_call_events(c: _Completion, step: ToolCalls, number: int) -> list[tuple[float, bytes]]:
    events = [(0.0, _sse(c.chunk({"role": "assistant", "content": None})))]
    for index, call in enumerate(step.calls):
        opening = {"index": index, **_tool_call_json(call, number, index, arguments="")}
        events.append((step.delay, _sse(c.chunk({"tool_calls": [opening]}))))
        arguments = call.arguments_json()
        for start in range(0, len(arguments), _ARGUMENT_PIECE):
            function = {"arguments": arguments[start : start + _ARGUMENT_PIECE]}
            piece = {"index": index, "function": function}
            events.append((step.delay, _sse(c.chunk({"tool_calls": [piece]}))))
    return events


def _ending(
    c: _Completion, finish_reason: str, usage: JSON, body: JSON
) -> list[tuple[float, bytes]]:
    events = [(0.0, _sse(c.chunk({}, finish_reason)))]
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append((0.0, _sse(c.usage_chunk(usage))))
    return [*events, (0.0, _sse("[DONE]")), (0.0, b"0\r\n\r\n")]


async def _answer_whole(
    conn: _Connection, step: _Answer, c: _Completion, body: JSON, number: int
) -> _Outcome:
    if isinstance(step, Drop):
        await conn.reset()
        return "closed"
    if isinstance(step, Malformed):
        return "sent" if await conn.respond(200, b"{not json") else "gone"

    if isinstance(step, ToolCalls):
        calls = [_tool_call_json(call, number, i) for i, call in enumerate(step.calls)]
        message = {"role": "assistant", "content": None, "tool_calls": calls}
        usage = _usage(body, _tool_text(step), step.prompt_tokens, step.completion_tokens)
        wait, payload = step.delay * len(calls), c.whole(message, "tool_calls", usage)
    else:
        text = "".join(step.tokens)
        usage = _usage(body, text, step.prompt_tokens, step.completion_tokens)
        message = {"role": "assistant", "content": text, "refusal": None}
        wait, payload = step.delay * len(step.tokens), c.whole(message, step.finish_reason, usage)

    if not await conn.pause(wait):
        return "gone"
    return "sent" if await conn.respond(200, _json(payload)) else "gone"


def _tool_call_json(call: ToolCall, number: int, index: int, arguments: str | None = None) -> JSON:
    function = {"name": call.name, "arguments": call.arguments_json()}
    if arguments is not None:
        function["arguments"] = arguments
    return {"id": call.id or f"call_{number}_{index}", "type": "function", "function": function}


def _tool_text(step: ToolCalls) -> str:
    return " ".join(f"{call.name} {call.arguments_json()}" for call in step.calls)


def _usage(
    body: JSON, completion_text: str, prompt: int | None = None, completion: int | None = None
) -> JSON:
    if prompt is None:
        messages = body.get("messages") or []
        prompt = sum(len(_text_of(m.get("content")).split()) for m in messages)
    if completion is None:
        completion = len(completion_text.split())
    total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _last_user_text(messages: Sequence[Mapping[str, object]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    return _text_of(users[-1].get("content")) if users else ""


def _text_of(content: object) -> str:
    """Text of a message's content, which is a string, a list of parts, or absent."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _split_words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


_ERROR_KINDS = {429: ("requests", "rate_limit_exceeded")}


def _error_json(status: int, message: str) -> bytes:
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERROR_KINDS.get(status, default)
    return _json({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Scripted"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _sse(data: JSON | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return _chunk(f"data: {text}\n\n".encode())


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json(data: JSON) -> bytes:
    return json.dumps(data).encode()
