"""relay.py: the user-name rewrite of ecFlow requests, and the relay's data path (against a fake unix-socket server)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.unit.access.other_account import foreign_client, needs_root

from ecflow_remote.access import relay
from ecflow_remote.clients.ecflow import commands, wire
from ecflow_remote.net import free_port

ME = "laptop"


def frame(obj: Any) -> bytes:
    return wire.encode_frame(wire.encode_json(obj))


def ping(user: str = ME, **kw: Any) -> dict[str, Any]:
    return commands.ping_request(commands.Identity("host", user, **kw))


def task_init() -> dict[str, Any]:
    # A task command (ecflow_client --init from a job): TaskCmd base, no user_.
    data = {
        "cereal_class_version": 0,
        "value0": {
            "cereal_class_version": 0,
            "value0": {"cereal_class_version": 0, "cl_host_": "host"},
            "path_to_submittable_": "/s/t",
            "jobs_password_": "x",
            "process_or_remote_id_": "1",
            "try_no_": 1,
        },
        "var_to_add_": [],
    }
    return commands.request("InitCmd", data)


def test_rewrites_only_the_user_value_of_a_user_command() -> None:
    for request in (ping(), commands.get_request(commands.Identity("h", ME), "/lab"), ping(password="abcd")):
        body = wire.encode_json(request)
        new = relay.rewrite_body(body, ME, "user1")
        assert new is not None
        expected = json.loads(body)
        expected["21ClientToServerRequest"]["cmd_"]["ptr_wrapper"]["data"]["value0"]["user_"] = "user1"
        # Byte for byte what ecflow_client itself would have sent as user1 (key order and layout kept).
        assert new == wire.encode_json(expected)
        assert new.replace(b'"user1"', b'"laptop"') == body


def test_leaves_everything_else_untouched() -> None:
    custom = wire.encode_json(ping(custom_user=True, password="crypted"))
    assert relay.rewrite_body(custom, ME, "user1") is None  # cu_: its own name and password
    assert relay.rewrite_body(wire.encode_json(ping("someone")), ME, "user1") is None  # not the laptop's name
    assert relay.rewrite_body(wire.encode_json(task_init()), ME, "user1") is None  # task command
    assert relay.rewrite_body(wire.encode_json(ping()), ME, ME) is None  # already the name
    for junk in (b"", b"not json", b"[1, 2]", b'{"x": 1}', b'{"21ClientToServerRequest": 7}', b"\xff\xfe"):
        assert relay.rewrite_body(junk, ME, "user1") is None
    # A string that merely contains the text of a user_ member is data, not a member.
    trick = ping()
    trick["21ClientToServerRequest"]["cmd_"]["ptr_wrapper"]["data"]["api_"] = '"user_": "laptop"'
    new = relay.rewrite_body(wire.encode_json(trick), ME, "user1")
    assert new is not None and b'\\"user_\\": \\"laptop\\"' in new and b'"user_": "user1"' in new


def test_group_command_rewritten_only_when_every_part_is_ours() -> None:
    def group(users: list[str]) -> dict[str, Any]:
        data = {
            "cereal_class_version": 0,
            "value0": commands.user_base(commands.Identity("h", ME)),
            "cmdVec_": [ping(u)["21ClientToServerRequest"]["cmd_"] for u in users],
        }
        return commands.request("GroupCTSCmd", data)

    new = relay.rewrite_body(wire.encode_json(group([ME, ME])), ME, "user1")
    assert new is not None and new.count(b'"user_": "user1"') == 3 and b"laptop" not in new
    assert relay.rewrite_body(wire.encode_json(group([ME, "other"])), ME, "user1") is None


def test_frames_split_and_malformed() -> None:
    data = frame(ping()) + frame(task_init())
    buf = bytearray(data[:5])
    out, stop = relay.rewrite_frames(buf, ME, "user1")
    assert out == b"" and not stop and bytes(buf) == data[:5]  # waits for the whole frame
    buf += data[5:]
    out, stop = relay.rewrite_frames(buf, ME, "user1")
    assert not stop and not buf
    assert out == frame(json.loads(wire.encode_json(ping("user1")))) + frame(task_init())
    # Not ecFlow framing: passed through as it is, and the connection is piped from then on (never rewritten).
    buf = bytearray(b"GET / HTTP/1.1\r\n\r\n")
    out, stop = relay.rewrite_frames(buf, ME, "user1")
    assert stop and out == b"GET / HTTP/1.1\r\n\r\n"
    # A frame too big to parse: forwarded unread.
    big = bytearray(wire.encode_header(relay.MAX_REWRITE + 1) + b"{")
    out, stop = relay.rewrite_frames(big, ME, "user1")
    assert stop and out.endswith(b"{")


def post(body: bytes, *extra: bytes) -> bytes:
    """A request as ecflow_client --http sends it (cpp-httplib: the Content-Length among other fields)."""
    head = [b"POST /v1/ecflow HTTP/1.1", b"Host: machine3:3191", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join([*head, b"Content-Type: application/json"]) + b"\r\n\r\n" + body


def test_http_requests_rewritten_with_their_length() -> None:
    """protocol = "http": each POSTed request rewritten as in a frame, its Content-Length set anew; the next
    request on the connection too (keep-alive); anything not plainly framed by one Content-Length piped as is."""
    mine, theirs = wire.encode_json(ping()), wire.encode_json(ping("someone"))
    data = post(mine) + post(theirs)
    buf = bytearray(data[:30])
    out, stop = relay.rewrite_http(buf, ME, "user1")
    assert out == b"" and not stop and bytes(buf) == data[:30]  # waits for the whole request
    buf += data[30:]
    out, stop = relay.rewrite_http(buf, ME, "user1")
    new = wire.encode_json(json.loads(wire.encode_json(ping("user1"))))
    expected = b"POST /v1/ecflow HTTP/1.1\r\nHost: machine3:3191\r\nContent-Type: application/json\r\n"
    assert not stop and not buf and out == expected + b"Content-Length: %d\r\n\r\n" % len(new) + new + post(theirs)
    for odd in (
        post(mine, b"Transfer-Encoding: chunked"),
        post(mine, b"Content-Length: 3"),  # two lengths: which one the server takes is not ours to guess
        post(mine).replace(b"Content-Length: %d" % len(mine), b"Content-Length: -1"),
        b"POST /v1/ecflow HTTP/1.1\r\n" + b"X: y\r\n" * (relay.MAX_HEAD // 6),
    ):
        buf = bytearray(odd)
        out, stop = relay.rewrite_http(buf, ME, "user1")
        assert stop and out == odd and not buf, odd[:80]
    # Not a POST: passed on unread.
    buf = bytearray(post(mine).replace(b"POST ", b"PUT ", 1))
    assert relay.rewrite_http(buf, ME, "user1") == (post(mine).replace(b"POST ", b"PUT ", 1), False)


def test_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        relay.Relay([relay.RelayRoute(("0.0.0.0", 0), tmp_path / "s", "user1")])


def _fake_server(path: Path, seen: list[bytes]) -> socket.socket:
    """A unix-socket 'ecFlow server': records each request, answers with a fixed reply frame."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                try:
                    body = wire.recv_frame(conn, timeout=5)
                except (OSError, wire.ProtocolError):
                    continue
                seen.append(body)
                conn.sendall(wire.encode_frame(b'{"reply": "' + b"x" * 100 + b'"}'))

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_relay_end_to_end(tmp_path: Path) -> None:
    seen: list[bytes] = []
    up = tmp_path / "ecf.sock"
    srv = _fake_server(up, seen)
    port = free_port()
    with relay.Relay([relay.RelayRoute(("127.0.0.1", port), up, "user1")], local_user=ME):
        for user, expected in ((ME, "user1"), ("other", "other")):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(frame(ping(user)))
                assert wire.recv_frame(c, timeout=5).startswith(b'{"reply"')
            assert (
                json.loads(seen[-1])["21ClientToServerRequest"]["cmd_"]["ptr_wrapper"]["data"]["value0"]["user_"]
                == expected
            )
    srv.close()


def test_relay_closes_when_ssh_is_away(tmp_path: Path) -> None:
    port = free_port()
    route = relay.RelayRoute(("127.0.0.1", port), tmp_path / "none.sock", "user1")
    with relay.Relay([route], local_user=ME), socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(frame(ping()))
        c.settimeout(5)
        # Closed with the request unread: an end of file, or a reset, as from a refused port.
        with contextlib.suppress(ConnectionResetError):
            assert c.recv(10) == b""


@needs_root
def test_relay_serves_only_our_own_account(tmp_path: Path) -> None:
    """Linux: another uid's request never reaches the server (under our name or any); ours is relayed."""
    seen: list[bytes] = []
    up = tmp_path / "ecf.sock"
    srv = _fake_server(up, seen)
    port = free_port()
    with relay.Relay([relay.RelayRoute(("127.0.0.1", port), up, "user1")], local_user=ME) as server:
        assert foreign_client(port, frame(ping())) in ("reset", "eof")
        assert server.foreign == 1
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(frame(ping()))
            assert wire.recv_frame(c, timeout=5).startswith(b'{"reply"')
    assert len(seen) == 1
    srv.close()


def test_a_custom_user_is_presented_with_its_password_as_ecflow_client_sends_it() -> None:
    """Byte for byte the request ecflow_client itself sends with ECF_USER=bob and bob's password: user_, then pswd_
    (crypt()ed), then cu_, in the order cereal reads them; a group command's every part."""
    bob = relay.Presented("bob", True, "abXyZcrypted")
    for identity in (commands.Identity("host", ME), commands.Identity("h", ME)):
        for build in (commands.ping_request, lambda i: commands.get_request(i, "/lab")):
            body = wire.encode_json(build(identity))
            want = build(commands.Identity(identity.client_host, "bob", "abXyZcrypted", custom_user=True))
            assert relay.rewrite_body(body, ME, bob) == wire.encode_json(want)
    # Without a password (one not read): the custom user alone, as the native client then sends it.
    body = relay.rewrite_body(wire.encode_json(ping()), ME, relay.Presented("bob", True))
    assert body == wire.encode_json(ping("bob", custom_user=True))
    # Even when the custom user is the login name itself: it becomes a custom user with the password.
    assert relay.rewrite_body(wire.encode_json(ping()), ME, relay.Presented(ME, True, "pw")) == wire.encode_json(
        ping(ME, password="pw", custom_user=True)
    )
    # relay.present: the same, as a request object (doctor's check of what a server makes of it).
    assert relay.present(ping(), ME, bob) == json.loads(
        wire.encode_json(ping("bob", password="abXyZcrypted", custom_user=True))
    )


def test_a_custom_users_relay_leaves_other_identities_alone() -> None:
    bob = relay.Presented("bob", True, "crypted")
    # A request with its own custom user, or the login name with its own password (ECF_PASSWD), or another name.
    for request in (ping(custom_user=True, password="x"), ping(password="own"), ping("someone"), task_init()):
        assert relay.rewrite_body(wire.encode_json(request), ME, bob) is None
    assert relay.present(ping("someone"), ME, bob) == ping("someone")


def test_the_password_never_shows_in_a_route() -> None:
    route = relay.RelayRoute(("127.0.0.1", 1), Path("/s"), relay.Presented("bob", True, "crypted-secret"))
    assert "crypted-secret" not in repr(route) and "bob" in repr(route)


@pytest.mark.parametrize(("protocol", "relayed"), [("plain", True), ("http", True), ("ssl", False), ("https", False)])
def test_which_protocols_are_relayed(tmp_path: Path, protocol: str, relayed: bool) -> None:
    """The relay reads plain frames and HTTP requests; TLS and HTTPS pass it by (it cannot read them)."""
    from tests.unit.ui.test_confdir import profile_from

    from ecflow_remote.plan import server_endpoint

    server = f'[[server]]\nname = "m"\nhost = "m"\nport = 1\nprotocol = "{protocol}"\n'
    text = '[gateway]\nhost = "w"\necflow_user = "user1"\n\n' + server
    endpoint = server_endpoint(profile_from(tmp_path, text), "m", "m", 1, "127.0.0.1", 1)
    assert endpoint.relay_user == ("user1" if relayed else None) and endpoint.protocol == protocol
