"""Fixtures for the client tests: the service targets, and the Node SDK driver.

Every client test runs against both targets: the offline model and a scripted upstream.
The Node SDK is pinned in `node/package-lock.json`; `.ci/run` installs it with `npm ci`, and
`node_client` does the same when `node_modules` is missing or stale, so a plain
`uv run pytest` works too. Without Node.js or npm the Node tests fail: they are the proof
that JavaScript clients work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.clients import TEAM, NodeClient, Target
from support.service import running_service
from support.upstream import ScriptedUpstream


@pytest.fixture(params=["offline", "scripted"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "offline":
        with running_service() as service:
            yield Target(service)
        return
    with ScriptedUpstream() as upstream:
        settings = {"LLM_MODEL": "scripted", "LLM_BASE_URL": upstream.base_url, "LLM_API_KEY": "x"}
        with running_service(**settings) as service:
            yield Target(service, upstream)
    assert upstream.errors == []
    assert upstream.pending == 0, "a scripted reply was never asked for"
    assert all(recorded.stream for recorded in upstream.requests)


NODE_DIR = Path(__file__).parent / "node"


def _pinned_openai() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/openai"]["version"])


def _installed_openai() -> str | None:
    manifest = NODE_DIR / "node_modules" / "openai" / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


@pytest.fixture(scope="session")
def node_client() -> NodeClient:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js 20+ and npm are needed for the Node SDK tests; install them."
    if _installed_openai() != _pinned_openai():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )

    def run(base_url: str, *scenarios: str, model: str = TEAM) -> dict[str, Any]:
        command = [node, str(NODE_DIR / "client.mjs"), base_url, model, *scenarios]
        env = os.environ | {"OPENAI_API_KEY": "unused"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        results: dict[str, Any] = json.loads(done.stdout)
        return results

    return run
