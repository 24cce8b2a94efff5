"""What the UI tests need: `augmix ui` serving a store, and a headless Chromium page (Playwright).

Playwright drives the system Chromium (Debian's `chromium`, found by `services.chromium_binary`) through
`executable_path`: its own browser builds are never downloaded (`pip install playwright` brings only the
driver). `missing()` says why a UI test cannot run here, for a skip with the fix in it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.services import APT_CHROMIUM, LOOPBACK, chromium_binary, free_port, stop, wait_http

# Headless, and nothing that reaches out of the machine or needs a GPU or a sandbox (root in CI).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def missing() -> str | None:
    """Why Chromium cannot be driven here, or None when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install -e '.[dev]' (it installs the driver only)"
    if chromium_binary() is None:
        return f"chromium not found; install it with `{APT_CHROMIUM}`"
    return None


@contextlib.contextmanager
def chromium(*, width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A fresh headless Chromium page (a Playwright `Page`) of `width` x `height`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_binary(), args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


@dataclass
class UI:
    url: str  # the server's base URL
    pages: dict[str, str]  # experiment name -> the page `augmix ui` said to open
    proc: subprocess.Popen
    log: Path


UI_LINE = re.compile(r"^\[ui\] experiment (?P<name>\S+): open (?P<url>\S+)$")


@contextlib.contextmanager
def augmix_ui(env: dict[str, str], workdir: Path, timeout: float = 120) -> Iterator[UI]:
    """`augmix ui --port <free>` run as a user runs it, with `env` (which names the store), until
    /health answers; stopped afterwards (its process group: the command becomes `mlflow ui`)."""
    port = free_port()
    log = workdir / f"augmix-ui-{port}.log"
    cmd = [str(Path(sys.executable).with_name("augmix")), "ui", "--port", str(port)]
    env = {**env, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/health", timeout, proc, log)
        lines = log.read_text(errors="replace").splitlines()
        pages = {m["name"]: m["url"] for m in map(UI_LINE.match, lines) if m}
        yield UI(url, pages, proc, log)
    finally:
        stop(proc)


def environment(store: Path) -> dict[str, str]:
    """The CLI's environment with MLflow pointed at the store in `store` (nothing else of MLflow's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AUGMIX_"))}
    env.update({"AUGMIX_PROJECT_ROOT": str(store),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    return env
