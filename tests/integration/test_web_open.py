"""`web`'s 0600 redirect page in a real browser (Debian's chromium, headless): it leads on to the page and signs the
browser in, the token consumed and gone from the address (issue 21: the token is in no command line)."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration import test_web_browser
from tests.unit.web.test_server import write_profile

from ecflow_remote.safefile import write_private
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.web.app import PageServer
from ecflow_remote.web.security import COOKIE, redirect_page

pytestmark = pytest.mark.integration
browser = test_web_browser.browser  # the same headless chromium fixture


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PageServer]:
    # All on a thread of its own: playwright's sync API runs its own loop on this one.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    page = PageServer(Tunnel(write_profile(tmp_path)), 0)
    asyncio.run_coroutine_threadsafe(page.start(), loop).result(10)
    try:
        yield page
    finally:
        asyncio.run_coroutine_threadsafe(page.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_redirect_page_signs_the_browser_in(server: PageServer, browser: Any, tmp_path: Path) -> None:
    opener = tmp_path / "web-open.html"
    write_private(opener, redirect_page(server.url))
    assert stat.S_IMODE(os.lstat(opener).st_mode) == 0o600
    page = browser.new_page()
    try:
        page.goto(opener.as_uri())
        page.wait_for_url(f"http://127.0.0.1:{server.guard.port}/", timeout=15_000)
        assert server.guard.token not in page.url
        assert COOKIE in {c["name"] for c in browser.cookies()}
    finally:
        page.close()
