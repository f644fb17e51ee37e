"""The ecFlow client against hostile or broken servers on 127.0.0.1: sizes from the network are claims, never
allocations; every bad reply is a ProtocolError (or a parse error) in plain words; a silent server is a timeout."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import tracemalloc
from collections.abc import Callable

import pytest
from tests.unit.samples import Serve

from ecflow_remote.clients.ecflow import wire
from ecflow_remote.clients.ecflow.client import AsyncEcflowClient, EcflowClient
from ecflow_remote.errors import (
    DefsParseError,
    EcflowRemoteError,
    ProtocolError,
    ProtocolMismatch,
    ReplyTooLarge,
    StreamTimeout,
)

READ_TIMEOUT = 1.0


def _node_reply(text: str) -> bytes:
    """A well-formed SNodeCmd reply (what `--get=/path` gets) carrying `text` as the node."""
    data = {"cereal_class_version": 0, "value0": {"cereal_class_version": 0}, "the_node_str_": text}
    stc = {"polymorphic_id": 2147483649, "polymorphic_name": "SNodeCmd", "ptr_wrapper": {"id": 1, "data": data}}
    return wire.encode_frame(json.dumps({"22ServerToClientResponse": {"stc_cmd_": stc}}).encode())


def _sends(data: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(data)

    return answer


def _endless(start: bytes, unit: bytes = b"x" * 65536) -> Callable[[socket.socket], None]:
    """Sends `start`, then `unit` again and again until the client goes away."""

    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        try:
            conn.sendall(start)
            while True:
                conn.sendall(unit)
        except OSError:
            return  # the client stopped reading and closed: what it should do

    return answer


def _silent(stop: threading.Event) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        stop.wait(30)  # accepted, read the request, never answers

    return answer


DEEP_NET = "".join(f"{'  ' * i}family f{i}\n" for i in range(5000))

# (server behaviour, error type, words of the message): each a way a server can lie or break.
HOSTILE = [
    pytest.param(_sends(b"ffffffff"), ReplyTooLarge, "announced a reply of 4294967295 bytes", id="huge-length"),
    pytest.param(_sends(b"12c00000" + b"{}"), ReplyTooLarge, "more than the 256 MiB", id="over-the-cap"),
    pytest.param(_endless(b"  100000"), ProtocolError, "not JSON", id="endless-after-a-header"),
    pytest.param(_endless(b"SSH-2.0-OpenSSH_9.2\r\n"), ProtocolError, "hex length header", id="endless-garbage"),
    pytest.param(_endless(b"HTTP/1.1 400 Bad\r\n"), ProtocolMismatch, 'set protocol = "http"', id="http-server"),
    pytest.param(_sends(wire.encode_frame(b'{"22ServerToClientResponse": ')), ProtocolError, "not JSON", id="cut-json"),
    pytest.param(_sends(wire.encode_frame(b"[" * 100_000)), ProtocolError, "nests JSON too deeply", id="deep-json"),
    pytest.param(_sends(wire.encode_frame(b'"just a string"')), ProtocolError, "not an object", id="json-not-object"),
    pytest.param(_sends(wire.encode_frame(b'{"x": 1}')), ProtocolError, "missing", id="json-wrong-shape"),
    pytest.param(_sends(_node_reply("endfamily\n")), DefsParseError, "without an open family", id="net-bad-end"),
    pytest.param(_sends(_node_reply(DEEP_NET)), DefsParseError, "nested more than 200 levels", id="net-deep"),
    pytest.param(_sends(_node_reply("task\n")), DefsParseError, "without a name", id="net-no-name"),
    pytest.param(_sends(b"      10{}"), ProtocolError, "after 2 of 16 reply bytes", id="short-body"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize(("behaviour", "error", "words"), HOSTILE)
def test_hostile_server_gives_a_clear_error(
    serve: Serve, api: str, behaviour: Callable[[socket.socket], None], error: type[Exception], words: str
) -> None:
    port = serve(behaviour)
    with pytest.raises(error, match=words) as info:
        if api == "sync":
            EcflowClient("127.0.0.1", port, read_timeout=10).get_node("/s/f")
        else:
            asyncio.run(AsyncEcflowClient("127.0.0.1", port, read_timeout=10).get_node("/s/f"))
    assert isinstance(info.value, EcflowRemoteError)  # one line from the CLI, never a traceback


@pytest.mark.timeout(60)
@pytest.mark.parametrize("api", ["sync", "async"])
def test_server_that_never_answers_is_a_timeout_not_a_hang(serve: Serve, api: str) -> None:
    stop = threading.Event()
    port = serve(_silent(stop))
    try:
        with pytest.raises(StreamTimeout, match="did not answer within 1s"):
            if api == "sync":
                EcflowClient("127.0.0.1", port, read_timeout=READ_TIMEOUT).ping()
            else:
                asyncio.run(AsyncEcflowClient("127.0.0.1", port, read_timeout=READ_TIMEOUT).ping())
    finally:
        stop.set()


async def _read_frame_of(data: bytes) -> bytes:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        return await wire.sock_read_frame(ours)


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_header_is_not_an_allocation(api: str) -> None:
    """A reply announcing 200 MiB (under the cap) that stops after a few KiB costs a few KiB, not 200 MiB."""
    data = wire.encode_header(200 * 1024 * 1024) + b"x" * 100_000
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="after 100000 of 209715200 reply bytes"):
            if api == "async":
                asyncio.run(_read_frame_of(data))
            else:
                ours, theirs = socket.socketpair()
                with ours, theirs:
                    theirs.sendall(data)
                    theirs.shutdown(socket.SHUT_WR)
                    wire.recv_frame(ours, timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


def test_a_big_reply_still_arrives_whole() -> None:
    """Buffers grown as bytes come still give back exactly the body, across many reads."""
    body = bytes(range(256)) * (3 * 1024 * 1024 // 256 + 7)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sender = threading.Thread(target=lambda: (theirs.sendall(wire.encode_frame(body)), theirs.close()))
        sender.start()
        try:
            assert wire.recv_frame(ours, timeout=30) == body
        finally:
            sender.join()


def test_the_cap_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_REPLY", 1000)
    with pytest.raises(ReplyTooLarge, match="1001 bytes"):
        asyncio.run(_read_frame_of(wire.encode_header(1001) + b"x" * 1001))
    assert asyncio.run(_read_frame_of(wire.encode_frame(b"y" * 1000))) == b"y" * 1000
