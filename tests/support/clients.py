"""The services real clients talk to: one on the offline model, one on a scripted upstream.

Every client test runs against both. On the offline model the answer is the offline model's
fixed reply; on the scripted upstream the drafter and the reviewer say exactly DRAFT and
ANSWER, so what a client shows can be compared with what the agents said, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.service import RunningService
from support.upstream import Reply, ScriptedUpstream

TEAM = "autogen-team"
QUESTION = "Why is the sky blue?"
DRAFT = "Sunlight scatters off air molecules, and blue light scatters the most."
ANSWER = "The sky is blue because air scatters short, blue wavelengths of sunlight most."

# Runs `tests/clients/node/client.mjs` on a base URL and scenarios; returns its JSON by scenario.
NodeClient = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """A running service, and what its team says to QUESTION."""

    service: RunningService
    upstream: ScriptedUpstream | None = None

    @property
    def base_url(self) -> str:
        return self.service.base_url

    def expect_runs(self, runs: int) -> None:
        """Scripts the upstream for `runs` team runs (two model calls each)."""
        if self.upstream is not None:
            for _ in range(runs):
                self.upstream.script(Reply.text(DRAFT, delay=0.002), Reply.text(ANSWER))

    def check_answer(self, content: str) -> None:
        if self.upstream is None:
            assert f"Answer to \u201c{QUESTION}\u201d" in content
            assert "**" not in content
        else:
            assert content == ANSWER

    def check_reasoning(self, reasoning: str) -> None:
        if self.upstream is None:
            assert reasoning.startswith(f"**drafter**\nDraft for \u201c{QUESTION}\u201d")
        else:
            assert reasoning == f"**drafter**\n{DRAFT}"
