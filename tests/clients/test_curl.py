"""The README's curl command, run as written (only the port changed), and the wire it shows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from support.clients import TEAM, Target
from support.streams import parse_sse, summarise_stream

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:4100"


def readme_curl_command() -> str:
    """The README's streaming curl example: the first bash block that runs `curl -N`."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    commands = [block for block in blocks if block.startswith("curl -N ")]
    assert commands, "README.md has no ```bash block starting with `curl -N`"
    return commands[0]


def curl(command: str, base_url: str) -> str:
    assert shutil.which("curl"), "curl is needed for the wire-format tests; install it."
    assert README_URL in command
    command = command.replace(README_URL, base_url.removesuffix("/v1"))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_curl_stream_shows_role_reasoning_answer_finish_and_done(target: Target) -> None:
    target.expect_runs(1)
    chunks = parse_sse(curl(readme_curl_command(), target.base_url))
    said = summarise_stream(chunks)
    assert chunks[0]["model"] == TEAM
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas[1] == {"reasoning_content": "**drafter**\n"}
    assert deltas[-1] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(len(delta) == 1 for delta in deltas[1:-1])
    target.check_reasoning(said.reasoning)
    target.check_answer(said.content)
    assert said.usage is None


def test_curl_without_stream_returns_one_completion_with_reasoning(target: Target) -> None:
    target.expect_runs(1)
    command = readme_curl_command().replace('"stream": true', '"stream": false')
    completion = json.loads(curl(command, target.base_url))
    assert completion["object"] == "chat.completion"
    message = completion["choices"][0]["message"]
    assert message["role"] == "assistant"
    target.check_answer(message["content"])
    target.check_reasoning(message["reasoning_content"])
