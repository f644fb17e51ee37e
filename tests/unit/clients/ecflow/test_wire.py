"""Framing and request/reply encoding of the ecFlow client protocol, checked against bytes from a real 5.9.2."""

from __future__ import annotations

import asyncio
import socket

import pytest
from tests.unit.samples import DATA

from ecflow_remote.clients.ecflow import commands, wire
from ecflow_remote.clients.ecflow.client import EcflowClient
from ecflow_remote.clients.ecflow.commands import Identity
from ecflow_remote.errors import ConnectError, ServerError

# What ecflow_client 5.9.2 sent for `--ping` as root from host "vm" (captured on a listening socket).
ECFLOW_CLIENT_PING = (
    b'     135{\n"21ClientToServerRequest": {\n"cmd_": {\n"polymorphic_id": 2147483649,\n'
    b'"polymorphic_name": "CtsCmd",\n"ptr_wrapper": {\n"id": 2147483649,\n"data": {\n'
    b'"cereal_class_version": 0,\n"value0": {\n"cereal_class_version": 0,\n"value0": {\n'
    b'"cereal_class_version": 0,\n"cl_host_": "vm"\n},\n"user_": "root"\n},\n"api_": 8\n}\n}\n}\n}\n}'
)
# And for `--get=/lab/f1`.
ECFLOW_CLIENT_GET_NODE_TAIL = b'"user_": "root"\n},\n"api_": 3,\n"absNodePath_": "/lab/f1"\n}\n}\n}\n}\n}'
# ECF_USER=fred with "secret" in ECF_CUSTOM_PASSWD: the password travels crypt()ed.
ECFLOW_CLIENT_CUSTOM_USER = b'"user_": "fred",\n"pswd_": "frrkUcE9qDkFs",\n"cu_": true\n},\n"api_": 8'

ROOT = Identity("vm", "root")


def test_header_is_space_padded_hex() -> None:
    assert wire.encode_header(0x135) == b"     135"
    assert wire.encode_header(0) == b"       0"
    assert len(wire.encode_header(0xFFFFFFFF)) == 8
    with pytest.raises(ValueError):
        wire.encode_header(0x100000000)


@pytest.mark.parametrize("header", [b"     135", b"00000135", b"135     ", b"     13F"])
def test_header_reading_accepts_space_or_zero_padding(header: bytes) -> None:
    assert wire.decode_header(header) == int(header.strip(), 16)


@pytest.mark.parametrize("header", [b"HTTP/1.1", b"SSH-2.0-", b"        ", b"12 34 56"])
def test_header_that_is_not_hex_is_a_protocol_error(header: bytes) -> None:
    with pytest.raises(wire.ProtocolError, match="hex length header"):
        wire.decode_header(header)


def test_ping_request_is_byte_identical_to_ecflow_client() -> None:
    assert wire.encode_frame(wire.encode_json(commands.ping_request(ROOT))) == ECFLOW_CLIENT_PING


def test_get_node_request_matches_ecflow_client() -> None:
    body = wire.encode_json(commands.get_request(ROOT, "/lab/f1"))
    assert body.endswith(ECFLOW_CLIENT_GET_NODE_TAIL)
    assert b'"polymorphic_name": "CtsNodeCmd"' in body
    assert b'"absNodePath_": ""' in wire.encode_json(commands.get_request(ROOT))


def test_server_version_request_has_only_the_user_base() -> None:
    data = commands.server_version_request(ROOT)["21ClientToServerRequest"]["cmd_"]["ptr_wrapper"]["data"]
    assert list(data) == ["cereal_class_version", "value0"]
    assert list(data["value0"]) == ["cereal_class_version", "value0", "user_"]


def test_custom_user_sends_crypted_password_then_cu() -> None:
    identity = Identity("vm", "fred", commands.crypt_password("secret", "fred"), custom_user=True)
    assert ECFLOW_CLIENT_CUSTOM_USER in wire.encode_json(commands.ping_request(identity))


def test_login_user_with_password_has_no_cu() -> None:
    identity = Identity("vm", "root", commands.crypt_password("hunter2", "root"))
    body = wire.encode_json(commands.ping_request(identity))
    assert b'"pswd_": "romtzD4WUgnGU"\n}' in body
    assert b"cu_" not in body


def test_password_never_shown() -> None:
    identity = Identity("vm", "fred", commands.crypt_password("secret", "fred"), custom_user=True)
    assert "frrkUcE9qDkFs" not in repr(identity)
    assert commands.crypt_password("", "fred") == ""


def _reply(name: str) -> commands.Reply:
    raw = (DATA / f"reply_{name}_5.9.2.bin").read_bytes()
    assert wire.decode_header(raw[:8]) == len(raw) - 8
    return commands.decode_reply(wire.decode_json(raw[8:]), "127.0.0.1:3141")


def test_real_replies_decode() -> None:
    commands.expect_ok(_reply("ping"))
    assert commands.expect_string(_reply("version")) == "5.9.2"
    assert commands.expect_node_text(_reply("node")).startswith("  family f1 # state:complete")


def test_error_reply_raises_server_error_with_the_servers_text() -> None:
    with pytest.raises(ServerError) as info:
        _reply("error")
    assert info.value.server_text == "Cannot find node at path '/nope' "
    assert "127.0.0.1:3141" in str(info.value)


def test_unexpected_reply_kind_is_a_protocol_error() -> None:
    with pytest.raises(wire.ProtocolError, match="answered SStringCmd, expected StcCmd"):
        commands.expect_ok(_reply("version"))


async def _read_frame_of(data: bytes, where: str = "the server") -> bytes:
    """sock_read_frame of `data` sent by a peer that then closes."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        return await wire.sock_read_frame(ours, where)


def test_read_frame_rejects_a_short_body() -> None:
    with pytest.raises(wire.ProtocolError, match="after 2 of 16 reply bytes"):
        asyncio.run(_read_frame_of(b"      10{}"))


def test_read_frame_names_a_silent_close() -> None:
    with pytest.raises(wire.ProtocolError, match="without a reply"):
        asyncio.run(_read_frame_of(b"", "ecFlow server h:1"))


def test_read_frame_whole_and_big() -> None:
    assert asyncio.run(_read_frame_of(wire.encode_frame(b"{}"))) == b"{}"
    big = b"x" * 100_000  # more than the first read, less than the socket buffer
    assert asyncio.run(_read_frame_of(wire.encode_frame(big) + b"trailing")) == big


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_connect_errors_name_the_target_and_the_proxy() -> None:
    port = _closed_port()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}: connection refused"):
        EcflowClient("127.0.0.1", port, connect_timeout=2).ping()
    with pytest.raises(ConnectError, match=f"machine1:4141 via SOCKS proxy 127.0.0.1:{port}: the SOCKS proxy itself"):
        EcflowClient("machine1", 4141, proxy=("127.0.0.1", port), connect_timeout=2).ping()
