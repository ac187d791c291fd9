"""Headless Chromium driven over the Chrome DevTools Protocol, for end-to-end page tests.

Debian's `chromium` is started with a new profile and the flags that keep it off the
network (no background, sync, component or QUIC traffic; every host name but loopback fails
to resolve). The test talks to one page over the DevTools websocket on loopback, using only
stable protocol domains (Page, Runtime, Input, Network, Emulation), so no browser is
downloaded and no driver has to match the browser's version. A missing chromium fails the
test with the command that installs it.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from websockets.asyncio.client import ClientConnection, connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--lang=en-US",
)
START_TIMEOUT = 20.0
_KEY_CODES = {"Enter": 13, "Tab": 9, "Escape": 27}


class DevToolsError(RuntimeError):
    """The browser answered a DevTools call with an error, or a page script threw."""


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            "Debian's chromium is not installed; install it with "
            "'apt-get update && apt-get install -y chromium' (.ci/run does this)."
        )
    return path


class Page:
    """One browser tab: call protocol methods, evaluate scripts, type, click, wait."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._session: dict[str, str] = {}
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def attach(self) -> None:
        """Points every later call at the browser's first tab."""
        targets = (await self.call("Target.getTargets"))["targetInfos"]
        tab = next(target["targetId"] for target in targets if target["type"] == "page")
        attached = await self.call("Target.attachToTarget", targetId=tab, flatten=True)
        self._session = {"sessionId": attached["sessionId"]}

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Sends one command and reads until its reply, keeping the events read meanwhile."""
        message_id = next(self._ids)
        request = {"id": message_id, "method": method, "params": params}
        await self._socket.send(json.dumps(request | self._session))
        with anyio.fail_after(30):
            while (message := json.loads(await self._socket.recv())).get("id") != message_id:
                if "method" in message:
                    self.events.append(message)
        if "error" in message:
            raise DevToolsError(f"{method} failed: {message['error']}")
        result: dict[str, Any] = message["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of `expression` in the page, awaited if it is a promise."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise DevToolsError(details.get("exception", {}).get("description") or str(details))
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 10.0) -> Any:
        """Polls until `expression` is truthy and returns it; fails after `seconds`."""
        deadline = time.monotonic() + seconds
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = await self.evaluate(expression)
            except DevToolsError as error:
                last = error  # a page being navigated to has no context to evaluate in yet
            if last and not isinstance(last, DevToolsError):
                return last
            await anyio.sleep(0.05)
        raise AssertionError(f"waited {seconds} s for {expression!r}; last got {last!r}")

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        )

    async def focus(self, selector: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")

    async def type(self, text: str) -> None:
        await self.call("Input.insertText", text=text)

    async def press(self, key: str) -> None:
        """A real key press (down and up) on the focused element: Enter, Tab or Escape."""
        for kind in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=key,
                windowsVirtualKeyCode=_KEY_CODES[key],
                text="\r" if key == "Enter" and kind == "keyDown" else "",
            )

    async def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element, as a person would make."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    async def resize(self, width: int, height: int, *, mobile: bool = False) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        await anyio.Path(path).write_bytes(base64.b64decode(shot["data"]))

    def script_errors(self) -> list[str]:
        """Uncaught exceptions and console.error calls seen so far."""
        errors = []
        for event in self.events:
            if event["method"] == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and (
                event["params"]["type"] == "error"
            ):
                errors.append(" ".join(str(a.get("value")) for a in event["params"]["args"]))
        return errors

    def requests(self, url_part: str) -> list[dict[str, Any]]:
        """The requests the page sent whose URL contains `url_part`, oldest first."""
        return [
            event["params"]["request"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
            and url_part in event["params"]["request"]["url"]
        ]


async def _devtools_url(profile: Path, browser: Process) -> str:
    # Chromium writes the port it chose, and the browser endpoint's path, into the profile.
    active = anyio.Path(profile / "DevToolsActivePort")
    with anyio.fail_after(START_TIMEOUT):
        while browser.returncode is None:
            lines = (await active.read_text()).split() if await active.exists() else []
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            await anyio.sleep(0.05)
    log = await anyio.Path(profile / "chromium.log").read_text(errors="replace")
    raise RuntimeError(f"chromium exited with {browser.returncode}:\n{log[-2000:]}")


def _signal_group(group: int, signum: int) -> bool:
    """Sends `signum` to a process group; False when no process is left in it."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


async def _stop(browser: Process) -> None:
    with anyio.CancelScope(shield=True):
        browser.terminate()
        with anyio.move_on_after(10):
            await browser.wait()
        if browser.returncode is None:
            browser.kill()
            await browser.wait()
        # Its helpers (renderer, network service) are in its process group and may outlive it;
        # they must be gone before the profile directory is removed.
        for _ in range(100):
            if not _signal_group(browser.pid, 0):
                return
            await anyio.sleep(0.05)
        _signal_group(browser.pid, signal.SIGKILL)


@asynccontextmanager
async def chromium_page(width: int = 1280, height: int = 900) -> AsyncIterator[Page]:
    """A fresh headless Chromium with one tab, closed (profile and all) when the block ends."""
    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as directory:
        profile = Path(directory)
        command = [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with (profile / "chromium.log").open("wb") as log:
            browser = await anyio.open_process(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        try:
            url = await _devtools_url(profile, browser)
            async with connect(url, max_size=None, proxy=None) as socket:
                page = Page(socket)
                await page.attach()
                for domain in ("Page", "Runtime", "Network"):
                    await page.call(f"{domain}.enable")
                await page.resize(width, height)
                yield page
        finally:
            await _stop(browser)
