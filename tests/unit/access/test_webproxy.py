"""The web proxy: the Centre's names carried through ssh's master (a stand-in speaking its protocol), others
refused before anything leaves, its PAC, and who may use it (peer uid on Linux, else the tunnel's password)."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.unit.access.other_account import foreign_client, needs_root
from tests.unit.transport.fake_master import fake_master

from ecflow_remote.access import webproxy
from ecflow_remote.access.socks import Credentials

DOMAINS = ("*.centre.test", "machine1")
CREDS = Credentials("ecflow-remote", "pw-for-tests")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Callable[..., webproxy.WebProxy]]:
    made: list[webproxy.WebProxy] = []

    def make(credentials: Credentials | None = None, master: bool = True) -> webproxy.WebProxy:
        p = webproxy.WebProxy(("127.0.0.1", 0), DOMAINS, credentials)
        if master:
            p.upstreams.control = tmp_path / "main.sock"
        made.append(p.start())
        return p

    yield make
    for p in made:
        p.stop()


def _exchange(port: int, data: bytes, then: bytes = b"") -> bytes:
    """What the proxy answers `data` (and, after its first answer, `then`), until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        got = c.recv(65536)
        if then:
            c.sendall(then)
        c.settimeout(0.5)
        try:
            while chunk := c.recv(65536):
                got += chunk
                if then and got.endswith(then):
                    break
        except TimeoutError:
            pass
        return got


def test_connect_to_a_centre_name_is_answered_once_the_master_opened_it(
    proxy: Callable[..., webproxy.WebProxy], tmp_path: Path
) -> None:
    p = proxy()
    with fake_master(tmp_path / "main.sock") as master:
        got = _exchange(p.port, b"CONNECT jupyter.centre.test:8888 HTTP/1.1\r\nHost: x\r\n\r\n", b"hello tls")
    assert got == b"HTTP/1.1 200 Connection established\r\n\r\nhello tls"
    assert [(r.host, r.port) for r in master.requests] == [("jupyter.centre.test", 8888)]
    assert p.carried == 1 and p.refused == 0


def test_an_absolute_http_request_goes_in_origin_form_without_the_proxy_headers(
    proxy: Callable[..., webproxy.WebProxy], tmp_path: Path
) -> None:
    p = proxy()
    request = (
        b"GET http://MACHINE1:8080/api/status?x=1 HTTP/1.1\r\nHost: machine1:8080\r\n"
        b"Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\n\r\n"
    )
    with fake_master(tmp_path / "main.sock") as master:
        got = _exchange(p.port, request)  # the stand-in echoes what reaches the far side
    assert got == b"GET /api/status?x=1 HTTP/1.1\r\nHost: machine1:8080\r\nConnection: close\r\n\r\n"
    assert [(r.host, r.port) for r in master.requests] == [("machine1", 8080)]


def test_another_name_is_refused_and_nothing_reaches_the_master(
    proxy: Callable[..., webproxy.WebProxy], tmp_path: Path
) -> None:
    p = proxy()
    with fake_master(tmp_path / "main.sock") as master:
        for request in (
            b"CONNECT www.example.org:443 HTTP/1.1\r\n\r\n",
            b"GET http://intranet.example.org/ HTTP/1.1\r\n\r\n",
            b"CONNECT centre.test.evil.org:443 HTTP/1.1\r\n\r\n",
            b"CONNECT localhost:22 HTTP/1.1\r\n\r\n",
        ):
            got = _exchange(p.port, request)
            assert got.startswith(b"HTTP/1.1 403 ") and b"only the Centre's names" in got
    assert master.requests == [] and p.refused == 4 and p.carried == 0


def test_a_refusal_at_the_far_side_and_a_tunnel_that_is_down_are_502s_that_say_why(
    proxy: Callable[..., webproxy.WebProxy], tmp_path: Path
) -> None:
    p = proxy()
    with fake_master(tmp_path / "main.sock", mode="refuse"):
        got = _exchange(p.port, b"CONNECT nohost.centre.test:443 HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 502 ") and b"could not open nohost.centre.test:443" in got
    down = proxy(master=False)
    got = _exchange(down.port, b"CONNECT a.centre.test:443 HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 502 ") and b"tunnel to the Centre is not up" in got


def test_the_pac_is_served_and_sends_only_the_centre_names_to_the_proxy(
    proxy: Callable[..., webproxy.WebProxy],
) -> None:
    p = proxy(credentials=CREDS)  # no secret needed for it: it holds none
    got = _exchange(p.port, b"GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = got.partition(b"\r\n\r\n")
    assert b" 200 " in head and b"application/x-ns-proxy-autoconfig" in head
    text = body.decode()
    assert f'return "PROXY 127.0.0.1:{p.port}";' in text and 'return "DIRECT";' in text
    assert 'shExpMatch(host, "*.centre.test")' in text and 'shExpMatch(host, "machine1")' in text


def test_without_a_peer_check_the_tunnel_password_is_required(
    proxy: Callable[..., webproxy.WebProxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webproxy.WebProxy, "check_peers", False)  # as on macOS
    p = proxy(credentials=CREDS)
    connect = b"CONNECT jupyter.centre.test:443 HTTP/1.1\r\n"
    wrong = base64.b64encode(b"ecflow-remote:guess")
    right = base64.b64encode(b"ecflow-remote:pw-for-tests")
    with fake_master(tmp_path / "main.sock") as master:
        none = _exchange(p.port, connect + b"\r\n")
        bad = _exchange(p.port, connect + b"Proxy-Authorization: Basic " + wrong + b"\r\n\r\n")
        good = _exchange(p.port, connect + b"Proxy-Authorization: Basic " + right + b"\r\n\r\n", b"x")
    for refused in (none, bad):
        assert refused.startswith(b"HTTP/1.1 407 ") and b'Proxy-Authenticate: Basic realm="' in refused
    assert good.startswith(b"HTTP/1.1 200 ") and len(master.requests) == 1 and p.refused == 2


@needs_root
def test_another_account_is_reset_before_a_byte_is_read(proxy: Callable[..., webproxy.WebProxy]) -> None:
    p = proxy()
    assert foreign_client(p.port, b"GET /proxy.pac HTTP/1.1\r\n\r\n") in ("reset", "eof")
    assert p.foreign == 1


def test_targets_and_heads() -> None:
    assert webproxy.parse_target(b"CONNECT", b"[::1]:443") == ("::1", 443, b"")
    assert webproxy.parse_target(b"GET", b"http://h.centre.test/a?b") == ("h.centre.test", 80, b"/a?b")
    assert isinstance(webproxy.parse_target(b"CONNECT", b"h.centre.test"), str)
    assert isinstance(webproxy.parse_target(b"GET", b"https://h.centre.test/"), str)
    assert webproxy.split_head(b"GET / HTTP/2\r\n") is None
    upgrade = b"GET http://h/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket"
    words, _ = webproxy.split_head(upgrade) or ([], [])
    assert b"Connection: Upgrade" in webproxy.rewritten(words, b"/ws", upgrade)
