"""`make demo`'s web step: `ecflow-remote web` started as a user would, opened in headless chromium, a screenshot."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@contextlib.contextmanager
def browser(width: int = 1400, height: int = 800, args: tuple[str, ...] = ()) -> Iterator[Any]:
    """Debian's chromium, headless, driven by playwright, with a fresh profile (no browser download: its own
    executable) and `args` besides the usual; the playwright BrowserContext."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="ecfr-chromium-") as profile_dir:
        context = p.chromium.launch_persistent_context(
            profile_dir,
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, *args],
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


def show(profile: Path, shot: Path) -> str:
    """Start the page server, open a task's output in the browser, save a screenshot; what happened, in words."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the dev extra): no screenshot"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (sh scripts/install-deps): no screenshot"
    proc, url = start_web(profile)
    try:
        print(f"$ ecflow-remote web --no-open\n    {url}", flush=True)
        with browser(1400, 760) as context:
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("() => Object.keys(window.ecfWeb.painted).length >= 2", timeout=30000)
            page.locator('.node[data-path="/lab/f1"] .tw').click()
            page.locator('.node[data-path="/lab/f1/hello"] .name').click()
            page.click('#tabs button[data-tab="output"]')
            page.click("#output-open")
            page.wait_for_selector('#output[data-complete="1"]', timeout=30000)
            page.wait_for_selector("#tunnel.up", timeout=15000)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
    finally:
        proc.terminate()
        proc.wait(15)
    return f"screenshot of the page: {shot}"


def start_web(profile: Path) -> tuple[subprocess.Popen[str], str]:
    """`ecflow-remote web --no-open` as a user starts it, and the URL it prints."""
    cli = str(Path(sys.executable).parent / "ecflow-remote")
    argv = [cli, "--profile", str(profile), "web", "--no-open"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        return proc, _url(proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _url(proc: subprocess.Popen[str]) -> str:
    # A thread reads: select() on a buffered text pipe misses lines already in Python's buffer.
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if "http://" in line:
            return line.strip()
    raise RuntimeError("ecflow-remote web printed no URL")
