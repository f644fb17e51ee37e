"""ecflow-remote web without a Centre: the tree's JSON, the polling diff, variables with their origins, and the
guard in front of every request (a real aiohttp server on loopback, real HTTP requests)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow import Defs, parse_defs
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.web import adapter, model
from ecflow_remote.web.app import PageServer
from ecflow_remote.web.security import COOKIE, CSRF_HEADER, Guard

DATA = Path(__file__).parents[1] / "data"


def sample() -> Defs:
    return parse_defs((DATA / "defs_5.9.2.net").read_text())


def test_tree_json_is_flat_depth_first_with_parents() -> None:
    defs = sample()
    data = model.tree_json("srv", defs)
    nodes = data["nodes"]
    assert len(nodes) == len(list(defs))
    # Rebuild each path from the parent indexes: the page does exactly this.
    paths: list[str] = []
    for parent, name, _kind, _state, _susp, _late in nodes:
        paths.append((paths[parent] if parent >= 0 else "") + "/" + name)
    assert paths == [n.path for n in defs]
    by_path = dict(zip(paths, nodes, strict=True))
    assert by_path["/lab/f2"][2:] == ["f", "queued", 1, 0]
    assert by_path["/lab/f1/t1/alias0"][2] == "a"
    assert data["server_state"] == defs.server_state


def test_polling_diff_states_structure_and_details() -> None:
    old, new = sample(), sample()
    assert not adapter.diff(old, new)
    new.find("/lab/f1/t2").state = "aborted"
    new.find("/lab/f2").suspended = False
    new.find("/lab/f1").variables["FV"] = "changed"
    update = adapter.diff(old, new)
    assert update.states == {"/lab/f1/t2", "/lab/f2"} and not update.full
    assert update.touched == {"/lab/f1"}
    grown = sample()
    from ecflow_remote.clients.ecflow.defs import Node

    lab = grown.find("/lab/f1")
    lab.children.append(Node("task", "new", parent=lab))
    assert adapter.diff(old, grown).full
    halted = sample()
    halted.server_state = "HALTED"
    assert adapter.diff(old, halted).server_state


def test_polling_watch_first_poll_is_a_whole_tree() -> None:
    trees = iter([sample(), sample()])

    async def fetch() -> Defs:
        return next(trees)

    async def run() -> tuple[adapter.Update, adapter.Update]:
        watch = adapter.PollingWatch(fetch)
        return await watch.poll(), await watch.poll()

    first, second = asyncio.run(run())
    assert first.full and not second


def test_variables_show_where_each_value_comes_from() -> None:
    defs = sample()
    t1 = defs.find("/lab/f1/t1")
    t1.jobs_password = "s3cret"
    rows = {v["name"]: v for v in model.variables_json(t1)}
    assert rows["TV"]["own"] and rows["TV"]["origin"] == "/lab/f1/t1"
    assert rows["FV"]["origin"] == "/lab/f1" and not rows["FV"]["own"]
    assert rows["ECF_HOME"]["origin"] == "/lab"  # the suite's value wins over the server's
    assert rows["ECF_HOME"]["overrides"] == [{"origin": "server", "value": "/tmp/w4/srv"}]
    assert rows["SRVVAR"]["origin"] == "server"
    assert rows["ECF_JOBOUT"]["kind"] == "generated" and rows["ECF_JOBOUT"]["value"] == t1.jobout_path()
    # The job password is a secret: named, never sent.
    assert rows["ECF_PASS"]["hidden"] and rows["ECF_PASS"]["value"] == ""
    assert "s3cret" not in json.dumps(model.node_json("srv", defs, t1))


def test_node_details_without_the_node_commands_yet() -> None:
    defs = sample()
    data = model.node_json("srv", defs, defs.find("/lab/f1/t1"))
    assert data["logserver"] == "logserver1:9316" and data["jobout"] == "/tmp/w4/out/lab/f1/t1.1"
    assert set(data["attributes"]) >= {"labels", "meters", "events", "trigger", "limits"}
    assert isinstance(data["why"], list)  # computed from the definition (ecflow/why.py)


def test_guard_host_and_origin() -> None:
    g = Guard(port=8123)
    assert g.host_ok("127.0.0.1:8123") and g.host_ok("localhost:8123")
    assert not g.host_ok("127.0.0.1:8124") and not g.host_ok("evil.example:8123") and not g.host_ok(None)
    assert g.origin_ok(None, required=False) and not g.origin_ok(None, required=True)
    assert g.origin_ok("http://127.0.0.1:8123", required=True)
    assert not g.origin_ok("http://evil.example", required=False)
    assert not g.origin_ok("null", required=False)
    assert g.token_ok(g.token) and not g.token_ok(g.token + "x") and not g.token_ok(None)
    assert g.url == f"http://127.0.0.1:8123/?token={g.token}"


# ------------------------------------------------------------------------- the guard over real HTTP requests


def write_profile(tmp_path: Path) -> Path:
    """A one-server profile; its tunnel is never started here."""
    profile = tmp_path / "profile.toml"
    profile.write_text(
        '[gateway]\njump = "u@jump"\nhost = "u@ws"\nmethod = "local"\n\n'
        '[[server]]\nname = "srv"\nhost = "ws"\nport = 4141\n'
    )
    return profile


@contextlib.contextmanager
def running(server: PageServer) -> Iterator[PageServer]:
    """The page server on its own loop in a thread, for plain blocking HTTP requests; stopped at the end."""
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[PageServer]:
    """A page server for a profile whose tunnel is not running (the feeds just report that)."""
    with running(PageServer(Tunnel(write_profile(tmp_path)), 0)) as server:
        yield server


def request(
    server: PageServer, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.guard.port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Host": f"127.0.0.1:{server.guard.port}", **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_token_buys_a_cookie_and_leaves_the_url(page_server: PageServer) -> None:
    g = page_server.guard
    status, _, _ = request(page_server, "GET", "/")
    assert status == 401
    status, _, _ = request(page_server, "GET", "/?token=wrong")
    assert status == 403
    status, headers, _ = request(page_server, "GET", f"/?token={g.token}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={g.session};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, body = request(page_server, "GET", "/", {"Cookie": f"{COOKIE}={g.session}"})
    assert status == 200 and g.csrf.encode() in body and g.token.encode() not in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "Access-Control-Allow-Origin" not in headers


def test_wrong_host_foreign_origin_and_missing_csrf_are_refused(page_server: PageServer) -> None:
    g = page_server.guard
    cookie = {"Cookie": f"{COOKIE}={g.session}"}
    assert request(page_server, "GET", "/api/status", {**cookie, "Host": f"evil.example:{g.port}"})[0] == 403
    assert request(page_server, "GET", "/api/status", {**cookie, "Origin": "http://evil.example"})[0] == 403
    action = {"server": "srv", "action": "suspend", "paths": ["/s/t"]}
    ours = {**cookie, "Origin": f"http://127.0.0.1:{g.port}", "Content-Type": "application/json"}
    # A cross-site page can send neither our Origin nor the CSRF header; each missing piece is enough to refuse.
    assert request(page_server, "POST", "/api/action", {**ours, "Origin": "http://evil.example"}, action)[0] == 403
    assert request(page_server, "POST", "/api/action", ours, action)[0] == 403
    no_origin = {k: v for k, v in ours.items() if k != "Origin"}
    assert request(page_server, "POST", "/api/action", {**no_origin, CSRF_HEADER: g.csrf}, action)[0] == 403
    assert (
        request(page_server, "POST", "/api/action", {"Origin": ours["Origin"], CSRF_HEADER: g.csrf}, action)[0] == 401
    )
    # Everything right: it reaches the action (which fails here for want of a tunnel, or of node commands).
    status, _, body = request(page_server, "POST", "/api/action", {**ours, CSRF_HEADER: g.csrf}, action)
    assert status in (501, 502), body
    bad = {**action, "paths": ["relative"]}
    assert request(page_server, "POST", "/api/action", {**ours, CSRF_HEADER: g.csrf}, bad)[0] == 400
    # GET cannot act.
    assert request(page_server, "GET", "/api/action", cookie)[0] == 405


def test_events_stream_starts_with_the_servers(page_server: PageServer) -> None:
    g = page_server.guard
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        conn.request("GET", "/api/events", headers={"Host": f"127.0.0.1:{g.port}", "Cookie": f"{COOKIE}={g.session}"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
        assert response.readline() == b"event: hello\n"
        hello = json.loads(response.readline().removeprefix(b"data: "))
        assert [s["name"] for s in hello["servers"]] == ["srv"]
        assert hello["colours"]["aborted"] == "rgb(255,59,53)"
    finally:
        conn.close()


def test_feed_pushes_the_new_state_of_each_changed_node(tmp_path: Path) -> None:
    """A feed over whole-definition polling: each poll gives a new tree, and the pushed state is the new one."""
    from ecflow_remote.web.live import Hub

    profile = write_profile(tmp_path)
    trees = [sample() for _ in range(3)]
    trees[1].find("/lab/f1/t2").suspended = True
    trees[2].find("/lab/f1/t2").suspended = True
    trees[2].find("/lab/f1/t2").state = "aborted"

    async def get_defs() -> Defs:
        return trees.pop(0) if len(trees) > 1 else trees[0]

    class TestHub(Hub):
        async def open_watch(self, server: str) -> adapter.DefsWatcher:
            watcher = adapter.PollingWatch(get_defs)
            await watcher.poll()
            return watcher

    async def run() -> list[tuple[str, Any]]:
        hub = TestHub(Tunnel(profile), interval=0.01, status=lambda: {"tunnel": {}})
        queue = hub.subscribe()
        hub.start()
        events: list[tuple[str, Any]] = []
        async with asyncio.timeout(10):
            while len([e for e in events if e[0] == "states"]) < 2:
                raw = await queue.get()
                assert raw is not None
                name, data = raw.decode().split("\n")[:2]
                events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
        await hub.stop()
        return events

    events = asyncio.run(run())
    states = [data["nodes"] for name, data in events if name == "states"]
    assert states == [[["/lab/f1/t2", "complete", 1, 0]], [["/lab/f1/t2", "aborted", 1, 0]]]
    assert [name for name, _ in events][:2] == ["hello", "tree"]
