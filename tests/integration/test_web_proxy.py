"""The Centre's web pages through the tunnel (issue 24): a real Jupyter server (jupyter_server + ipykernel, token
auth) on a Centre host only the tunnel reaches, and real Chromium at home using the tunnel's web proxy through its
PAC file: the REST API read by the Centre's name, a cell run in a real kernel over its websocket; a name that is
not the Centre's never goes through the tunnel; another local account is refused; `open` when the tunnel is down
says so in one line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from centre.webshot import CHROMIUM, CHROMIUM_ARGS
from tests.integration.centres import settled
from tests.unit.access.other_account import foreign_client

from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "ecflow-remote")
JUPYTER = "jupyter.centre.test"
OUTSIDE = "intranet.example.org"  # the same Centre host under a name outside [web] domains
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"


def cli(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "--profile", str(profile), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def web_centre() -> Iterator[Any]:
    from centre import Centre, jupyter

    with Centre(web_hosts={"jupyter": (JUPYTER, OUTSIDE)}) as c:
        c.jupyter = jupyter.start(c, JUPYTER)  # plain http: the browser's requests in absolute form
        c.jupyter_tls = jupyter.start(c, JUPYTER, 8443, tls=True)  # https: the browser's CONNECT, end to end
        yield c


@pytest.fixture(scope="module")
def tunnel(web_centre: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    profile = web_centre.write_profile(tmp_path_factory.mktemp("webproxy") / "profile.toml", "local")
    assert '[web]\ndomains = ["*.centre.test"]' in profile.read_text()
    t = Tunnel(profile)
    t.up()
    try:
        yield t
    finally:
        t.down()


@pytest.fixture(scope="module")
def chromium(web_centre: Any, tunnel: Tunnel) -> Iterator[Any]:
    """Chromium at home whose only proxy setting is the tunnel's PAC file."""
    pytest.importorskip("playwright.sync_api", reason="playwright comes with the dev extra")
    from centre.webshot import browser

    state = tunnel.state()
    assert state is not None and state.web_pac is not None
    # The https server's own key is trusted, and only it: the TLS session ends at Jupyter, not in between.
    spki = f"--ignore-certificate-errors-spki-list={web_centre.jupyter_tls.spki}"
    with browser(1200, 700, args=(f"--proxy-pac-url={state.web_pac}", spki)) as context:
        yield context


def test_status_json_names_the_proxy_and_a_pac_sending_only_the_centre_there(tunnel: Tunnel) -> None:
    data = json.loads(cli(tunnel.profile.path, "status", "--json").stdout)
    proxy, pac = data["web_proxy"], data["web_pac"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", proxy) and pac == f"{proxy}/proxy.pac"
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    text = no_proxy.open(pac, timeout=10).read().decode()
    assert 'shExpMatch(host, "*.centre.test")' in text and f'"PROXY {proxy.removeprefix("http://")}"' in text
    assert 'return "DIRECT";' in text
    printed = cli(tunnel.profile.path, "open", "--print", f"http://{JUPYTER}:8888/lab")
    assert printed.returncode == 0 and f"proxy: {proxy}" in printed.stdout and f"PAC:   {pac}" in printed.stdout


def test_chromium_reads_jupyter_by_its_centre_name_and_runs_a_cell_over_its_websocket(
    web_centre: Any, chromium: Any
) -> None:
    from centre import jupyter

    j = web_centre.jupyter_tls  # as JupyterHub: https, the websocket wss, both through CONNECT untouched
    assert j.url == f"https://{JUPYTER}:8443"
    page = chromium.new_page()
    try:
        response = page.goto(f"{j.url}/api/status?token={j.token}", timeout=30000)
        assert response is not None and response.status == 200
        assert set(json.loads(page.inner_text("body"))) >= {"started", "kernels", "connections"}
        # From one of Jupyter's HTML pages (its API replies forbid scripts any connection: CSP default-src 'none'),
        # a kernel that runs at the Centre (its host name), reached through the kernel's websocket from home.
        page.goto(f"{j.url}/login", timeout=30000)
        out = jupyter.run_cell(page, j, "import socket; print(socket.gethostname(), 6 * 7)")
        assert out.strip() == "jupyter 42"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-proxy-jupyter.png"))
    finally:
        page.close()


def test_a_name_outside_the_centre_never_goes_through_the_tunnel(
    web_centre: Any, tunnel: Tunnel, chromium: Any
) -> None:
    # The Centre itself knows the name: carried through the tunnel, it would load.
    fetch = f"import urllib.request; print(urllib.request.urlopen('http://{OUTSIDE}:8888/api').read())"
    assert "version" in web_centre.exec("machine1", ["/usr/bin/python3", "-c", fetch]).stdout
    page = chromium.new_page()
    try:
        with pytest.raises(Exception, match="ERR_NAME_NOT_RESOLVED"):  # DIRECT, by the PAC: unknown at home
            page.goto(f"http://{OUTSIDE}:8888/api", timeout=30000)
    finally:
        page.close()
    state = tunnel.state()
    assert state is not None and state.web_proxy is not None
    via_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": state.web_proxy}))
    with pytest.raises(urllib.error.HTTPError) as refused:  # asked of the proxy directly: refused, not carried
        via_proxy.open(f"http://{OUTSIDE}:8888/api", timeout=10)
    assert refused.value.code == 403 and b"only the Centre's names" in refused.value.read()
    assert json.loads(via_proxy.open(f"http://{JUPYTER}:8888/api", timeout=10).read())["version"]


def test_a_centre_name_the_centre_cannot_reach_is_a_502_that_says_why(tunnel: Tunnel) -> None:
    state = tunnel.state()
    assert state is not None and state.web_proxy is not None
    via_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": state.web_proxy}))
    with pytest.raises(urllib.error.HTTPError) as failed:
        via_proxy.open("http://nohost.centre.test:8888/api", timeout=20)
    body = failed.value.read().decode()
    assert failed.value.code == 502 and "could not open nohost.centre.test:8888" in body, body


def test_another_local_account_is_refused_by_the_proxy(tunnel: Tunnel) -> None:
    state = tunnel.state()
    assert state is not None and state.web_proxy is not None
    port = int(state.web_proxy.rsplit(":", 1)[1])
    got = foreign_client(port, f"CONNECT {JUPYTER}:8888 HTTP/1.1\r\n\r\n".encode())
    assert got in ("reset", "eof"), got


def test_open_starts_a_private_browser_profile_with_the_pac(web_centre: Any, tunnel: Tunnel, tmp_path: Path) -> None:
    # A real chromium, headless (no display here) and printing the page it loaded: the same flags `open` gives it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dom = tmp_path / "dom.html"
    wrapper = bin_dir / "chromium"
    pid = tmp_path / "chromium.pid"  # its process group, killed at the end whatever happened
    wrapper.write_text(
        f'#!/bin/sh\necho $$ > {pid}\nexec {CHROMIUM} {" ".join(CHROMIUM_ARGS)} --dump-dom "$@" > {dom} 2>/dev/null\n'
    )
    wrapper.chmod(0o755)
    j = web_centre.jupyter
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    url = f"{j.url}/api/status?token={j.token}"
    try:
        argv = [CLI, "--profile", str(tunnel.profile.path), "open", url]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "private chromium profile" in done.stdout
        assert wait_for(lambda: dom.exists() and "last_activity" in dom.read_text(), 45, 0.2), dom.read_text()
    finally:
        if pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid.read_text()), signal.SIGKILL)  # `open` started it in a session of its own
    profile_dir = tunnel.rundir.path / "browser" / "chromium"
    assert profile_dir.is_dir() and (profile_dir.stat().st_mode & 0o777) == 0o700


def test_the_proxy_outlives_a_reconnect(web_centre: Any, tunnel: Tunnel) -> None:
    state = tunnel.state()
    assert state is not None and state.web_proxy is not None and state.pid is not None
    old, proxy = state.pid, state.web_proxy
    os.kill(old, signal.SIGKILL)  # the main ssh leg: the supervisor reconnects under its listeners
    assert wait_for(lambda: (s := tunnel.state()) is not None and s.state == "up" and s.pid not in (None, old), 30)
    assert tunnel.state().web_proxy == proxy  # type: ignore[union-attr]  # the same listener, not a new port
    via_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    assert json.loads(via_proxy.open(f"http://{JUPYTER}:8888/api", timeout=10).read())["version"]


def test_the_far_side_agent_carries_them_too(web_centre: Any, tmp_path: Path) -> None:
    """As over a home link: the agent, not ssh's master, opens the connections (resolving the name at the far
    side): a kernel made over the REST API (absolute-form requests) and a cell run over its websocket (CONNECT),
    with Python's clients this time (one browser per module)."""
    websocket = pytest.importorskip("websocket", reason="websocket-client comes with jupyter_server")
    profile = web_centre.write_profile(tmp_path / "agent.toml", "local", transport="agent")
    t = Tunnel(profile)
    t.up()
    try:
        state = settled(t)
        assert state.transport == "agent" and state.web_proxy is not None
        j = web_centre.jupyter
        via_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": state.web_proxy}))
        made = urllib.request.Request(
            f"{j.url}/api/kernels", data=b"{}", method="POST", headers={"Authorization": f"token {j.token}"}
        )
        kernel = json.loads(via_proxy.open(made, timeout=30).read())["id"]
        port = int(state.web_proxy.rsplit(":", 1)[1])
        ws = websocket.create_connection(
            f"ws://{JUPYTER}:8888/api/kernels/{kernel}/channels?token={j.token}",
            http_proxy_host="127.0.0.1",
            http_proxy_port=port,
            proxy_type="http",
            timeout=60,
        )
        try:
            assert _run(ws, "print(sum(range(10)))") == "45\n"
        finally:
            ws.close()
    finally:
        t.down()
    with pytest.raises(ConnectionRefusedError):  # `down` closed it with the tunnel's other listeners
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _run(ws: Any, code: str) -> str:
    """A cell run over a kernel's websocket (Jupyter's JSON messages): what it printed."""
    header = {"msg_id": "m1", "msg_type": "execute_request", "username": "", "session": "s1", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    ws.send(json.dumps({"channel": "shell", "header": header, "parent_header": {}, "metadata": {}, "content": content}))
    text = ""
    while True:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != "m1":
            continue
        if msg["msg_type"] == "stream":
            text += msg["content"]["text"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return text


def test_with_the_tunnel_down_open_says_so_in_one_line(web_centre: Any, tmp_path: Path) -> None:
    profile = web_centre.write_profile(tmp_path / "down.toml", "local")
    done = cli(profile, "open", f"http://{JUPYTER}:8888/")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and done.stdout == ""
    assert "no tunnel is running" in lines[0] and "ecflow-remote up" in lines[0]
