"""The playground page: served by the app, and used end to end in headless Chromium.

The browser test drives Debian's chromium over the DevTools protocol against a real uvicorn
on loopback, with the offline model slowed down so the page can be watched while it streams.
Its screenshots land in test-artifacts/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from support.browser import Page, chromium_page
from support.service import RunningService, running_service

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
KEY = "playground-test-key"
FIRST = "Why is the sky blue?"
SECOND = "And why are sunsets red?"

# Everything the test reads about the replies on the page, as one JSON value.
READ_REPLIES = """
Array.from(document.querySelectorAll(".turn.assistant"), (turn) => ({
  state: turn.dataset.state,
  busy: turn.getAttribute("aria-busy"),
  agents: Array.from(turn.querySelectorAll("details.agent"), (block) => ({
    name: block.querySelector("summary .agent-name").textContent,
    text: block.querySelector(".agent-text").textContent,
    open: block.open,
  })),
  answer: turn.querySelector(".answer").textContent,
  meta: turn.querySelector(".meta").textContent,
  error: turn.querySelector(".error").hidden ? "" : turn.querySelector(".error").textContent,
}))
"""
FIGURES = (
    r"^\d+ tokens \(\d+ prompt, \d+ completion\) · first token after \d+\.\d\d s · "
    r"\d+\.\d\d s in all$"
)
NARROW_CONTROLS_IN_VIEW = """
["#model", "#api-key", "#message", "#send", "#stop"].every((selector) => {
  const box = document.querySelector(selector).getBoundingClientRect();
  return box.width > 0 && box.left >= 0 && box.right <= innerWidth && box.bottom <= innerHeight;
})
"""
STOPPED_FIGURES = r"^first token after \d+\.\d\d s · stopped after \d+\.\d\d s$"


@pytest.fixture(scope="module")
def guarded() -> Iterator[RunningService]:
    with running_service(API_KEYS=KEY, OFFLINE_TOKEN_DELAY=0.05) as running:
        yield running


def test_playground_page_and_assets_are_served_without_a_key(guarded: RunningService) -> None:
    page = httpx2.get(f"{guarded.url}/playground")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="playground/app.js"' in page.text

    for asset, media_type in (("app.js", "text/javascript"), ("style.css", "text/css")):
        response = httpx2.get(f"{guarded.url}/playground/{asset}")
        assert response.status_code == 200, asset
        assert response.headers["content-type"].startswith(media_type)

    missing = httpx2.get(f"{guarded.url}/playground/index.html.bak")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def replies(page: Page) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = await page.evaluate(READ_REPLIES)
    return value


async def ask(page: Page, question: str) -> None:
    await page.focus("#message")
    await page.type(question)
    await page.press("Enter")


async def watch_agent_fill(page: Page, turn: int) -> list[int]:
    """The lengths the first agent block of reply `turn` had while the answer had not begun."""
    lengths: list[int] = []
    with anyio.fail_after(20):
        while True:
            reply = (await replies(page))[turn]
            if reply["answer"] or reply["state"] != "streaming":
                return lengths
            if reply["agents"] and len(reply["agents"][0]["text"]) not in lengths[-1:]:
                lengths.append(len(reply["agents"][0]["text"]))
            await anyio.sleep(0.02)


async def enter_key(page: Page) -> None:
    await page.wait_for("!document.querySelector('#notice').hidden")
    notice = await page.evaluate("document.querySelector('#notice').textContent")
    assert "Missing API key" in notice and "HTTP 401" in notice
    assert "Enter the service's key under API key." in notice

    await page.focus("#api-key")
    await page.type(KEY)
    await page.press("Enter")
    await page.wait_for("document.querySelector('#model').value === 'autogen-team'")
    assert await page.evaluate("document.querySelector('#notice').hidden")


async def first_question_streams_blocks_then_answer(page: Page) -> str:
    await ask(page, FIRST)
    lengths = await watch_agent_fill(page, 0)
    assert len(lengths) >= 3 and lengths == sorted(lengths), lengths

    await page.wait_for("document.querySelector('.turn.assistant').dataset.state !== 'streaming'")
    (reply,) = await replies(page)
    assert reply["state"] == "done" and reply["busy"] == "false", reply
    assert [agent["name"] for agent in reply["agents"]] == ["drafter"]
    assert reply["agents"][0]["text"].startswith(f"Draft for \u201c{FIRST}\u201d")
    assert reply["agents"][0]["open"]
    assert reply["answer"].startswith("Reviewed the draft by drafter")
    assert FIRST in reply["answer"]
    assert "**" not in reply["answer"]
    assert re.match(FIGURES, reply["meta"]) and not reply["error"], reply
    answer: str = reply["answer"]
    return answer


async def second_question_stops(page: Page, service: RunningService) -> None:
    await ask(page, SECOND)
    await page.wait_for(
        "document.querySelectorAll('.turn.assistant')[1]"
        "?.querySelector('.agent-text')?.textContent.length > 40"
    )
    assert not await page.evaluate("document.querySelector('#stop').disabled")
    await page.click("#stop")

    await page.wait_for(
        "document.querySelectorAll('.turn.assistant')[1].dataset.state !== 'streaming'"
    )
    stopped = (await replies(page))[1]
    assert stopped["state"] == "stopped" and stopped["busy"] == "false", stopped
    assert re.match(STOPPED_FIGURES, stopped["meta"]) and not stopped["error"], stopped
    assert stopped["answer"] == "" and stopped["agents"][0]["name"] == "drafter"
    await anyio.sleep(1.0)  # at 0.05 s a word, a run still going would add ~20 words
    assert (await replies(page))[1] == stopped
    assert await page.evaluate("document.querySelector('#stop').disabled")
    assert not await page.evaluate("document.querySelector('#send').disabled")

    # The browser dropped the connection, so the service ended the request and its run.
    requests_open = service.server.server_state.tasks
    for _ in range(60):
        if not requests_open:
            break
        await anyio.sleep(0.05)
    assert not requests_open, "the stopped request was still being served 3 s later"


def check_requests(page: Page, answer: str) -> None:
    sent = page.requests("/v1/chat/completions")
    assert len(sent) == 2
    bodies = [json.loads(request["postData"]) for request in sent]
    assert bodies[1]["messages"] == [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": SECOND},
    ]
    assert all(body["stream"] and body["stream_options"]["include_usage"] for body in bodies)
    for request in [*sent, *page.requests("/v1/models")[1:]]:
        assert request["headers"].get("Authorization") == f"Bearer {KEY}"
    every_url = [request["url"] for request in page.requests("")]
    assert every_url and not any(KEY in url for url in every_url)


@pytest.mark.anyio
async def test_playground_in_chromium_streams_agent_turns_answers_and_stops(
    guarded: RunningService,
) -> None:
    async with chromium_page(width=1200, height=900) as page:
        await page.goto(f"{guarded.url}/playground")
        await enter_key(page)
        assert await page.evaluate("sessionStorage.getItem('fastapi-autogen-team.api-key')") == KEY

        answer = await first_question_streams_blocks_then_answer(page)
        await second_question_stops(page, guarded)
        check_requests(page, answer)
        await page.screenshot(ARTIFACTS / "playground.png")

        await page.resize(390, 844, mobile=True)
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert await page.evaluate(NARROW_CONTROLS_IN_VIEW)
        await page.screenshot(ARTIFACTS / "playground-narrow.png")
        assert page.script_errors() == []
