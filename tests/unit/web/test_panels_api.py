"""The panels' endpoints without a Centre: bad requests answered 400 before anything is sent, `--read-only`
refusing every write (and only writes), and the Triggers panel's two directions from a definition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.web.test_server import request, running, write_profile

from ecflow_remote.clients.ecflow import parse_defs
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.web import adapter
from ecflow_remote.web.app import PageServer
from ecflow_remote.web.security import COOKIE, CSRF_HEADER


@pytest.fixture(params=[False, True], ids=["read-write", "read-only"])
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PageServer]:
    with running(PageServer(Tunnel(write_profile(tmp_path)), 0, read_only=request.param)) as page:
        yield page


def headers(page: PageServer) -> dict[str, str]:
    g = page.guard
    return {
        "Cookie": f"{COOKIE}={g.session}",
        "Origin": f"http://127.0.0.1:{g.port}",
        "Content-Type": "application/json",
        CSRF_HEADER: g.csrf,
    }


WRITES: list[tuple[str, dict[str, Any]]] = [
    ("alter", {"server": "srv", "path": "/s/t", "how": "add", "name": "A", "value": "1"}),
    ("submit", {"server": "srv", "path": "/s/t", "text": "echo\n"}),
    ("zombie", {"server": "srv", "action": "fob", "paths": ["/s/t"]}),
    ("statuscmd", {"server": "srv", "path": "/s/t"}),
    ("action", {"server": "srv", "action": "suspend", "paths": ["/s/t"]}),
]


def test_writes_reach_the_server_unless_read_only(server: PageServer) -> None:
    for name, body in WRITES:
        status, _, text = request(server, "POST", f"/api/{name}", headers(server), body)
        if server.hub.read_only:
            assert status == 403 and b"read-only" in text, (name, text)
        else:  # through to the (not running) tunnel
            assert status == 502, (name, text)
    # Pre-process changes nothing: allowed either way (and fails here for want of a tunnel).
    body = {"server": "srv", "path": "/s/t", "text": "x\n"}
    assert request(server, "POST", "/api/preprocess", headers(server), body)[0] == 502


def test_bad_requests_are_refused_before_anything_is_sent(server: PageServer) -> None:
    h = headers(server)
    assert request(server, "GET", "/api/file?server=srv&path=/s/t&kind=passwd", h)[0] == 400
    assert request(server, "GET", "/api/file?server=srv&path=s/t&kind=job", h)[0] == 400
    assert request(server, "GET", "/api/serverlog?server=srv&lines=-3", h)[0] == 400
    assert request(server, "GET", "/api/serverlog?server=nope", h)[0] == 502  # no such server: named
    if not server.hub.read_only:
        bad = {"server": "srv", "path": "/s/t", "how": "rename", "name": "A"}
        assert request(server, "POST", "/api/alter", h, bad)[0] == 400
        assert (
            request(server, "POST", "/api/zombie", h, {"server": "srv", "action": "block", "paths": ["/s"]})[0] == 400
        )
        assert request(server, "POST", "/api/submit", h, {"server": "srv", "path": "/s/t", "text": " "})[0] == 400


def test_triggers_both_ways() -> None:
    defs = parse_defs(
        "#5.9.2\nsuite s\n family f\n  task a\n  task b\n   trigger a == complete and ../g/c:ev\n endfamily\n"
        " family g\n  task c\n   event ev\n  task d\n   complete /s/f == complete\n endfamily\nendsuite\n# enddef\n"
    )
    b = adapter.triggers(defs, defs.find("/s/f/b"))
    assert [(n["path"], n["ref"]) for n in b["needs"]] == [("/s/f/a", "a"), ("/s/g/c", "../g/c:ev")]
    a = adapter.triggers(defs, defs.find("/s/f/a"))
    assert [n["path"] for n in a["needed_by"]] == ["/s/f/b"] and a["needs"] == []
    # A family is needed by what names it or anything below it.
    f = adapter.triggers(defs, defs.find("/s/f"))
    assert [n["path"] for n in f["needed_by"]] == ["/s/g/d"]
