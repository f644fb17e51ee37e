"""`web` opens the browser on a 0600 page that leads on to the token URL: the token is in no command line (which
every local account reads in /proc/PID/cmdline), and the page still signs the browser in (issue 21)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.unit.samples import LOCAL_PROFILE

# The "browser": records its command line and the page it was given.
BROWSER = """#!/bin/sh
printf '%s\\n' "$@" > "{out}/argv"
"""


def _all_command_lines() -> str:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(found)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/cmdline")
def test_the_browser_gets_a_private_page_not_the_token(tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(LOCAL_PROFILE)
    browser = tmp_path / "browser"
    browser.write_text(BROWSER.format(out=tmp_path))
    browser.chmod(0o700)
    run = tmp_path / "run"
    env = {**os.environ, "BROWSER": str(browser), "ECFLOW_REMOTE_RUNTIME_DIR": str(run), "DISPLAY": ""}
    argv = [sys.executable, "-m", "ecflow_remote", "--profile", str(profile), "web"]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = ""
            while not url:
                line = proc.stdout.readline()
                assert line, proc.stderr.read() if proc.stderr else ""
                if "?token=" in line:
                    url = line.strip()
            token = url.split("?token=")[1]
            deadline = time.monotonic() + 30
            while not (tmp_path / "argv").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            given = (tmp_path / "argv").read_text().split()
            assert len(given) == 1 and given[0].startswith("file://"), given
            assert token not in given[0] and token not in _all_command_lines()
            page = Path(urlsplit(given[0]).path)
            info = os.lstat(page)
            assert page.parent == run and stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
            target = re.search(r'url=([^"]+)"', page.read_text())
            assert target is not None and target.group(1) == url
            # The page's address signs the browser in: the token buys a session cookie.
            parts = urlsplit(url)
            assert parts.port is not None
            conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
            conn.request("GET", f"/?{parts.query}", headers={"Host": parts.netloc})
            answer = conn.getresponse()
            assert answer.status in (302, 303) and "ecflow_remote_session=" in (answer.getheader("Set-Cookie") or "")
            conn.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    assert not page.exists()
