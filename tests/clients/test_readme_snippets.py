"""The README's Node SDK and LangChain examples, run as written against a real server.

Only the address changes (the README says 127.0.0.1:4100, the test server has a free port),
so a README example that stops working fails here first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.clients import QUESTION, NodeClient
from support.service import RunningService, running_service

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:4100"
NODE_DIR = Path(__file__).parent / "node"


def readme_block(language: str, marker: str) -> str:
    """The README's first ```language block that contains `marker`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)
    matching = [block for block in blocks if marker in block]
    assert matching, f"README.md has no ```{language} block with {marker!r}"
    return matching[0]


def at(service: RunningService, code: str) -> str:
    assert README_URL in code
    return code.replace(README_URL, service.url)


def run(command: list[str], code: str, cwd: Path) -> str:
    done = subprocess.run(command, input=code, capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    with running_service() as running:
        yield running


def test_readme_node_example_prints_turns_then_the_answer(
    service: RunningService, node_client: NodeClient
) -> None:
    node = shutil.which("node")
    assert node  # node_client checked it, and installed the pinned openai package
    code = at(service, readme_block("js", "finalChatCompletion"))
    # Read from stdin as a module, bare imports resolve from the working directory.
    printed = run([node, "--input-type=module", "-"], code, NODE_DIR)
    streamed, _, final = printed.partition("\n ")
    assert streamed.startswith(f"**drafter**\nDraft for \u201c{QUESTION}\u201d")
    assert f"Answer to \u201c{QUESTION}\u201d" in final
    assert streamed.endswith(final.strip())


def test_readme_langchain_example_prints_answer_then_turns_and_answer(
    service: RunningService, tmp_path: Path
) -> None:
    code = at(service, readme_block("python", "ChatDeepSeek"))
    printed = run([sys.executable, "-"], code, tmp_path)
    answer_only, _, with_turns = printed.partition("\n")
    assert f"Answer to \u201c{QUESTION}\u201d" in answer_only
    assert "**drafter**" not in answer_only
    assert with_turns.startswith(f"**drafter**\nDraft for \u201c{QUESTION}\u201d")
    assert with_turns.endswith(answer_only)
