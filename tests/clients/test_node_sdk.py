"""The official `openai` npm package on Node.js, against a real uvicorn.

`node/client.mjs` runs the SDK and prints what it saw as JSON (see `node_client` in
conftest.py for how the pinned package gets installed).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from support.clients import TEAM, NodeClient, Target
from support.service import running_service
from support.streams import summarise_stream


def test_node_sdk_create_stream_yields_valid_chunks_with_reasoning_answer_and_usage(
    target: Target, node_client: NodeClient
) -> None:
    target.expect_runs(1)
    result = node_client(target.base_url, "create-stream")["create-stream"]
    assert "error" not in result, result
    said = summarise_stream(result["chunks"])
    target.check_reasoning(said.reasoning)
    target.check_answer(said.content)
    assert said.finish_reason == "stop"
    assert said.usage is not None
    assert (
        said.usage["total_tokens"] == said.usage["prompt_tokens"] + said.usage["completion_tokens"]
    )


def test_node_sdk_stream_helper_final_completion_has_role_answer_and_finish(
    target: Target, node_client: NodeClient
) -> None:
    target.expect_runs(1)
    result = node_client(target.base_url, "stream-helper")["stream-helper"]
    assert "error" not in result, result
    said = summarise_stream(result["chunks"])
    final = result["final"]
    assert final["id"] == result["chunks"][0]["id"]
    assert final["model"] == TEAM
    choice = final["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == result["content"] == said.content
    target.check_answer(choice["message"]["content"])
    target.check_reasoning(said.reasoning)
    # The helper assigns unknown delta fields instead of appending them, so the final message
    # keeps only the last reasoning piece; the whole transcript is in the chunk events.
    assert choice["message"]["reasoning_content"] == said.reasoning_pieces[-1]


def test_node_sdk_create_without_stream_returns_answer_and_reasoning(
    target: Target, node_client: NodeClient
) -> None:
    target.expect_runs(1)
    completion = node_client(target.base_url, "create")["create"]
    assert "error" not in completion, completion
    message = completion["choices"][0]["message"]
    target.check_answer(message["content"])
    target.check_reasoning(message["reasoning_content"])
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["completion_tokens"] > 0


def test_node_sdk_model_list_gives_what_model_pickers_show(
    target: Target, node_client: NodeClient
) -> None:
    first = node_client(target.base_url, "models")["models"]
    again = node_client(target.base_url, "models")["models"]
    assert "error" not in first, first
    listed = first["listed"]
    assert [model["id"] for model in listed] == [TEAM]
    team = listed[0]
    assert team["object"] == "model"
    assert isinstance(team["created"], int) and not isinstance(team["created"], bool)
    assert team["owned_by"] == "fastapi-autogen-team"
    assert team["name"] == "AutoGen drafter and reviewer"
    assert team["description"]
    assert team["context_length"] == team["top_provider"]["context_length"] > 0
    assert first["retrieved"] == team
    assert again["listed"] == listed  # the same ids and `created` on every call


def test_node_sdk_sees_think_mode_inner_turns_in_content(node_client: NodeClient) -> None:
    with running_service(AGENT_MESSAGES="think") as service:
        result = node_client(service.base_url, "stream-helper")["stream-helper"]
    assert "error" not in result, result
    said = summarise_stream(result["chunks"])
    assert said.reasoning == ""
    thinking, closing, answer = said.content.partition("\n</think>\n\n")
    assert closing
    assert thinking.startswith("<think>\n**drafter**\nDraft for")
    assert "Answer to" in answer and "<think>" not in answer
    assert result["final"]["choices"][0]["message"]["content"] == said.content


@pytest.fixture
def roleless_server() -> Iterator[str]:
    """A server whose stream never sends `delta.role`, as some OpenAI-compatible servers do."""
    chunk = {
        "id": "chatcmpl-roleless",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": TEAM,
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
    }
    last = chunk | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_node_sdk_stream_helper_rejects_a_stream_without_role(
    roleless_server: str, node_client: NodeClient
) -> None:
    """The control for the helper test above: the helper really checks what it is said to."""
    result = node_client(roleless_server, "stream-helper")["stream-helper"]
    assert result["error"]["message"] == "missing role for choice 0"
