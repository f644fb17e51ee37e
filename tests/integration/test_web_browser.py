"""`ecflow-remote web` in a real browser (Debian's chromium, headless, driven by playwright) against the simulated
Centre through a real tunnel: both servers' trees, filters, job output with follow, live state changes, actions,
and the security rules. Screenshots go to tests/artifacts/web/."""

from __future__ import annotations

import http.client
import http.server
import subprocess
import threading
import time
from typing import Any

import pytest
from tests.integration.webpage import Web, WebProcess, browser, expand, open_page, page, row, web

__all__ = ["browser", "page", "web"]  # the shared fixtures

pytestmark = pytest.mark.integration

# ------------------------------------------------------------------------------------------------ the page


def test_tree_shows_both_servers_and_filters(web: Web, page: Any) -> None:
    open_page(page, web)
    assert "token" not in page.url  # traded for a cookie, then stripped from the address
    for server, suite in (("machine1", "lab"), ("machine2", "ops")):
        assert row(page, server, "/").locator(".sstate").inner_text() == "RUNNING"
        assert row(page, server, f"/{suite}").get_attribute("data-state") == "aborted"
        assert row(page, server, f"/{suite}/f2").get_attribute("data-suspended") == "1"
    # The suite's families show (suites open at first); their tasks only once a family is opened.
    assert row(page, "machine1", "/lab/f1/hello").count() == 0
    expand(page, "machine1", "/lab/f1")
    assert row(page, "machine1", "/lab/f1/hello").get_attribute("data-state") == "complete"
    # ecflow_ui's colours.
    assert row(page, "machine1", "/lab/f1/fails").locator(".name").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    ) == ("rgb(255, 59, 53)")
    assert "certificate:" in page.inner_text("#cert") and "left" in page.inner_text("#cert")
    page.wait_for_selector("#tunnel.up")

    # "Show me what aborted": every aborted node of both servers, with its ancestors.
    page.select_option("#state-filter", "aborted")
    shown = page.eval_on_selector_all(".node:not(.server)", "rs => rs.map(r => [r.dataset.path, r.dataset.state])")
    assert ("/lab/f1/fails", "aborted") in [tuple(x) for x in shown]
    assert ("/ops/f1/fails", "aborted") in [tuple(x) for x in shown]
    assert all(state == "aborted" for _, state in shown), shown
    page.select_option("#state-filter", "")
    page.fill("#filter", "lat")
    paths = page.eval_on_selector_all(".node:not(.server)", "rs => rs.map(r => r.dataset.path)")
    assert paths == ["/lab", "/lab/f2", "/lab/f2/later", "/ops", "/ops/f2", "/ops/f2/later"]
    page.fill("#filter", "")


def test_node_details_and_job_output(web: Web, centre: Any, page: Any) -> None:
    open_page(page, web)
    expand(page, "machine1", "/lab/f1")
    row(page, "machine1", "/lab/f1/hello").locator(".name").click()
    page.wait_for_selector("#d-path:text-is('/lab/f1/hello')")
    assert page.inner_text("#d-state").startswith("complete")
    assert "logserver1:9316" in page.inner_text("#tab-info")
    page.click('#tabs button[data-tab="variables"]')
    variables = page.eval_on_selector_all("#vars tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.innerText))")
    by_name = {cells[0]: cells for cells in variables if cells[0]}
    assert by_name["ECF_LOGHOST"][1:3] == ["logserver1", "/lab"]  # inherited from the suite
    assert by_name["ECF_PASS"][1] == "(hidden)"

    page.click('#tabs button[data-tab="output"]')
    page.click("#output-open")
    page.wait_for_selector('#output[data-complete="1"]', timeout=20000)
    spec = centre.server("machine1")
    assert page.inner_text("#output").rstrip("\n") == centre.jobout(spec).read_text().rstrip("\n")
    assert page.get_attribute("#output", "data-source") == "log server logserver1:9316"

    # Follow: what the job writes next shows up, through the log server's delta.
    jobout = centre.jobout(spec, "f1/long")
    row(page, "machine1", "/lab/f1/long").locator(".name").click()
    page.wait_for_selector("#d-path:text-is('/lab/f1/long')")
    page.check("#output-follow")
    page.click("#output-open")
    page.wait_for_function("() => document.querySelector('#output').dataset.source !== undefined", timeout=20000)
    marker = f"written while the page follows {time.time()}"
    with open(jobout, "a") as f:
        f.write(marker + "\n")
    page.wait_for_function("m => document.querySelector('#output').textContent.includes(m)", arg=marker)
    page.click("#output-stop")


def test_state_change_on_the_server_shows_live(web: Web, centre: Any, page: Any) -> None:
    open_page(page, web)
    expand(page, "machine2", "/ops/f1")
    page.evaluate("window.stillTheSamePage = true")
    try:
        centre.ecflow_client("machine2", centre.server("machine2").port, ["--suspend", "/ops/f1/hello"])
        page.wait_for_selector('.node[data-server="machine2"][data-path="/ops/f1/hello"][data-suspended="1"]')
    finally:
        centre.ecflow_client("machine2", centre.server("machine2").port, ["--resume", "/ops/f1/hello"])
    page.wait_for_selector('.node[data-server="machine2"][data-path="/ops/f1/hello"][data-suspended="0"]')
    assert page.evaluate("window.stillTheSamePage") is True  # pushed into the page, never a reload


def test_action_changes_the_real_server(web: Web, centre: Any, page: Any) -> None:
    port = centre.server("machine1").port
    open_page(page, web)
    expand(page, "machine1", "/lab/f1")
    row(page, "machine1", "/lab/f1/hello").locator(".name").click()
    page.wait_for_selector("#d-path:text-is('/lab/f1/hello')")
    try:
        page.click('#d-actions button[data-action="suspend"]')
        assert "/lab/f1/hello" in page.inner_text("#confirm-paths")
        page.click("#confirm-ok")
        page.wait_for_selector('.node[data-server="machine1"][data-path="/lab/f1/hello"][data-suspended="1"]')
        dstate = centre.ecflow_client("machine1", port, ["--query", "dstate", "/lab/f1/hello"]).stdout.strip()
        assert dstate == "suspended"
    finally:
        centre.ecflow_client("machine1", port, ["--resume", "/lab/f1/hello"])


# --------------------------------------------------------------------------------------------- security


def http_get(port: int, path: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_security_rules(web: Web, page: Any) -> None:
    host = {"Host": f"127.0.0.1:{web.port}"}
    bearer = {"Authorization": f"Bearer {web.token}"}
    assert http_get(web.port, "/", host) == 401
    assert http_get(web.port, "/api/status", host) == 401
    assert http_get(web.port, "/?token=" + "x" * 43, host) == 403
    assert http_get(web.port, "/api/status", {**host, **bearer}) == 200
    # DNS rebinding: a page of another name that resolves to 127.0.0.1 names itself in Host.
    assert http_get(web.port, "/api/status", {"Host": f"rebind.example:{web.port}", **bearer}) == 403
    assert http_get(web.port, "/api/status", {**host, **bearer, "Origin": "http://evil.example"}) == 403

    # Another local account, even with the token: dropped before any answer.
    code = (
        "import http.client,sys\n"
        f"c=http.client.HTTPConnection('127.0.0.1',{web.port},timeout=10)\n"
        "try:\n"
        f"    c.request('GET','/api/status',headers={{'Authorization':'Bearer {web.token}'}})\n"
        "    print(c.getresponse().status)\n"
        "except (ConnectionError, http.client.HTTPException) as e:\n"
        "    print('refused', type(e).__name__)\n"
    )
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", code]
    other = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")
    assert other.stdout.startswith("refused"), (other.stdout, other.stderr)

    # A page of another local origin (same site: SameSite cookies do not help here) in the same browser,
    # after the user signed in: it can neither read the API nor act.
    open_page(page, web)
    evil = _EvilSite(f"http://127.0.0.1:{web.port}/api/action")
    try:
        page.goto(evil.url)
        read = page.evaluate(
            "url => fetch(url, {credentials: 'include'}).then(r => 'read ' + r.status, e => 'blocked')",
            f"http://127.0.0.1:{web.port}/api/status",
        )
        assert read == "blocked"
        # The classic cross-site request: a form posted to the action endpoint, the browser adding the cookie.
        with page.expect_navigation() as navigation:
            page.evaluate("() => document.forms[0].submit()")
        assert navigation.value is not None and navigation.value.status == 403
    finally:
        evil.stop()


class _EvilSite:
    """Another page on loopback, on another port (what a malicious local page or a rebinding page would be)."""

    def __init__(self, target: str) -> None:
        # text/plain forms need no preflight: the body arrives as `name=value`, here a JSON action.
        form = (
            f'<form method="post" action="{target}" enctype="text/plain">'
            """<input name='{"server": "machine1", "action": "suspend", "paths": ["/lab/f1/hello"], "x": "' """
            """value='"}'></form>"""
        )

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"<!doctype html><title>elsewhere</title><p>another site{form}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_port_option_and_ctrl_c(web: Web) -> None:
    from centre.howto import free_port

    port = free_port()
    process = WebProcess(web.tunnel.profile.path, "--port", str(port))
    try:
        assert process.url.startswith(f"http://127.0.0.1:{port}/?token=")
        assert http_get(port, "/", {"Host": f"127.0.0.1:{port}"}) == 401
        assert (
            http_get(port, "/api/status", {"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {web.token}"}) == 401
        )
    finally:
        code = process.stop()
    assert code == 0 and "Stopped." in process.printed
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
