"""A minimal headless-Chromium driver over the DevTools protocol (no selenium, no driver binary).

Chromium is started with `--remote-debugging-port=0` (it picks a free loopback port and writes it to
`<profile>/DevToolsActivePort`); we talk to the page target over its WebSocket with aiohttp (already
installed as a dependency of dvc-http). Enough for: open a URL, wait until text appears, click what a
user would click (by CSS selector), read the visible text and the DOM, save a PNG screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.services import chromium_binary, stop

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0"]


class Page:
    """One browser tab driven synchronously (each call runs a short asyncio exchange)."""

    def __init__(self, ws_url: str):
        self._ws_url = ws_url
        self._id = 0

    async def _send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self._ws_url, max_msg_size=0) as ws:
                self._id += 1
                await ws.send_json({"id": self._id, "method": method, "params": params or {}})
                async for msg in ws:
                    data = json.loads(msg.data)
                    if data.get("id") == self._id:
                        if "error" in data:
                            raise RuntimeError(f"{method}: {data['error']}")
                        return data.get("result", {})
        raise RuntimeError(f"{method}: connection closed without an answer")

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict:
        return asyncio.run(asyncio.wait_for(self._send(method, params, timeout), timeout))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML") or ""

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Poll the visible text until every needle is there; return it."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise TimeoutError(f"not shown after {timeout:.0f} s: {missing}\n--- visible text ---\n{text[:3000]}")

    def click_all(self, selector: str) -> int:
        """Click every element matching `selector` (as a user clicking each); returns how many."""
        return int(self.evaluate(
            f"(() => {{ const els = [...document.querySelectorAll({json.dumps(selector)})];"
            f" els.forEach(e => e.click()); return els.length; }})()"))

    def scroll_to_text(self, text: str) -> bool:
        """Scroll the innermost element whose own text starts with `text` into view."""
        return bool(self.evaluate(
            "(() => { const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);"
            f" const t = {json.dumps(text)};"
            " while (w.nextNode()) { if (w.currentNode.textContent.trim().startsWith(t)) {"
            " w.currentNode.parentElement.scrollIntoView({block: 'start'}); return true; } }"
            " return false; })()"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def browser(profile_dir: Path, *, width: int = 1600, height: int = 1000, timeout: float = 60) -> Iterator[Page]:
    """Start headless Chromium with a fresh profile and yield its first tab."""
    import urllib.request

    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium not found")
    profile_dir.mkdir(parents=True, exist_ok=True)
    log = profile_dir / "chromium.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
                                 "about:blank"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"chromium did not open its DevTools port\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.loads(resp.read())
        page = next(t for t in targets if t.get("type") == "page")
        yield Page(page["webSocketDebuggerUrl"])
    finally:
        stop(proc)
