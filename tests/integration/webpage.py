"""The browser side of the web tests, shared: `ecflow-remote web` run as a user runs it, Debian's chromium through
playwright, and the page's helpers."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from centre.webshot import CHROMIUM

from ecflow_remote.tunnel.handle import Tunnel

CLI = str(Path(sys.executable).parent / "ecflow-remote")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"


@dataclass
class Web:
    process: WebProcess
    tunnel: Tunnel

    @property
    def url(self) -> str:  # with the token
        return self.process.url

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0

    @property
    def token(self) -> str:
        return urlsplit(self.url).query.removeprefix("token=")


class WebProcess:
    """`ecflow-remote web --no-open` run as a user runs it; its URL read from what it prints."""

    def __init__(self, profile: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [CLI, "--profile", str(profile), "web", "--no-open", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        # A thread reads: select() on a buffered text pipe misses lines already in Python's buffer.
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.printed = ""
        self.url = self._wait_for_url()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.printed += line
            if "http://" in line:
                return line.strip()
        self.proc.kill()
        raise AssertionError(f"ecflow-remote web printed no URL: {self.printed!r}")

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; its exit status (everything it printed is in `printed`)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -9
        self.reader.join(5)
        while not self.lines.empty():
            self.printed += self.lines.get() or ""
        return code


@pytest.fixture(scope="module")
def web(centre: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    profile = centre.write_profile(tmp_path_factory.mktemp("web") / "profile.toml", "local")
    tunnel = Tunnel(profile)
    tunnel.up()
    try:
        process = WebProcess(profile)
        try:
            yield Web(process, tunnel)
        finally:
            process.stop()
    finally:
        tunnel.down()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `sh scripts/install-deps` (Debian's chromium package)")
    pytest.importorskip("playwright.sync_api", reason="playwright comes with the dev extra")
    from centre.webshot import browser as launch

    with launch() as context:
        yield context


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Refused requests log "Failed to load resource" (expected here); a CSP violation would be a bug of the page.
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"{request.node.name}.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
        page.close()
    assert not errors, errors  # no script error and no CSP violation on the page


def open_page(page: Any, web: Web) -> None:
    page.goto(web.url)
    # Functions, not expression strings: playwright evaluates a polled string with eval(), which the page's CSP refuses.
    page.wait_for_function("() => Object.keys(window.ecfWeb.painted).length >= 2", timeout=20000)


def expand(page: Any, server: str, path: str) -> None:
    row = page.locator(f'.node[data-server="{server}"][data-path="{path}"]')
    if row.locator(".tw").inner_text() == "▸":
        row.locator(".tw").click()
    page.wait_for_selector(f'.node[data-server="{server}"][data-path="{path}/hello"]')


def row(page: Any, server: str, path: str) -> Any:
    return page.locator(f'.node[data-server="{server}"][data-path="{path}"]')
