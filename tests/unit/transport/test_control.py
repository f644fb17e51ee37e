"""control.py: OpenSSH's mux protocol, byte for byte as mux.c (9.2p1) writes and reads it, and one handoff."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest
from tests.unit.transport.fake_master import fake_master

from ecflow_remote.transport import control
from ecflow_remote.transport.control import ControlError, Handoff, Reply


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


def test_hello_is_version_4_without_extensions() -> None:
    assert control.hello() == _u32(8) + _u32(0x00000001) + _u32(4)


def test_stdio_forward_request_as_ssh_w_sends_it() -> None:
    # mux_client_request_stdio_fwd: type, request id, reserved (empty string), host (string), port (uint32).
    body = _u32(0x10000008) + _u32(1) + _u32(0) + _u32(8) + b"machine1" + _u32(4141)
    assert control.stdio_forward("machine1", 4141) == _u32(len(body)) + body


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_stdio_forward_refuses_a_port_that_is_none(port: int) -> None:
    with pytest.raises(ValueError, match="not a TCP port"):
        control.stdio_forward("machine1", port)


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        (_u32(0x00000001) + _u32(4), Reply(control.MUX_MSG_HELLO, value=4)),
        (_u32(0x00000001) + _u32(4) + _u32(3) + b"ext" + _u32(0), Reply(control.MUX_MSG_HELLO, value=4)),
        (_u32(0x80000006) + _u32(1) + _u32(9), Reply(control.MUX_S_SESSION_OPENED, 1, value=9)),
        (
            _u32(0x80000003) + _u32(1) + _u32(28) + b"Session open refused by peer",
            Reply(control.MUX_S_FAILURE, 1, reason="Session open refused by peer"),
        ),
        (
            _u32(0x80000002) + _u32(1) + _u32(17) + b"Permission denied",
            Reply(control.MUX_S_PERMISSION_DENIED, 1, reason="Permission denied"),
        ),
        (_u32(0x80000004) + _u32(9) + _u32(0), Reply(control.MUX_S_EXIT_MESSAGE, 9)),
    ],
)
def test_decode(body: bytes, reply: Reply) -> None:
    assert control.decode(body) == reply


@pytest.mark.parametrize(
    "body",
    [b"", _u32(0x00000001), _u32(0x80000006) + _u32(1), _u32(0x80000003) + _u32(1) + _u32(10) + b"short"],
)
def test_decode_cut_short(body: bytes) -> None:
    with pytest.raises(ControlError, match="cut short"):
        control.decode(body)


def test_split_takes_whole_packets_and_keeps_a_partial_one() -> None:
    hello = control.packet(_u32(0x00000001) + _u32(4))
    opened = control.packet(_u32(0x80000006) + _u32(1) + _u32(3))
    buffer = bytearray(hello + opened[:7])
    assert control.split(buffer) == [Reply(control.MUX_MSG_HELLO, value=4)]
    assert buffer == opened[:7]
    buffer += opened[7:]
    assert control.split(buffer) == [Reply(control.MUX_S_SESSION_OPENED, 1, value=3)]
    assert buffer == b""


def test_split_refuses_a_packet_larger_than_the_master_sends() -> None:
    with pytest.raises(ControlError, match="at most"):
        control.split(bytearray(_u32(256 * 1024 + 1) + b"x"))


async def _hand(path: Path, fd: int) -> tuple[bool, Handoff, asyncio.Event]:
    loop = asyncio.get_running_loop()
    decided: asyncio.Future[bool] = loop.create_future()
    ended = asyncio.Event()
    handoff = Handoff(loop, path, fd, ("machine1", 4141), decided.set_result, lambda h: ended.set())
    assert handoff.start()
    return await asyncio.wait_for(decided, 5), handoff, ended


def test_a_socket_handed_over_is_served_by_the_master_and_ends_with_its_channel(tmp_path: Path) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        with fake_master(tmp_path / "main.sock") as master, ours:
            opened, handoff, ended = await _hand(master.path, theirs.fileno())
            assert opened and handoff.opened and handoff.reason is None
            theirs.close()  # our copy: the master's keep the connection
            [request] = master.requests
            assert (request.host, request.port) == ("machine1", 4141) and len(request.fds) == 2
            ours.sendall(b"ping")
            assert ours.recv(4) == b"ping"  # through the two fds the master got: one socket
            ours.shutdown(socket.SHUT_WR)
            assert ours.recv(4) == b""  # the master closed both of its fds: the socket is gone
            await asyncio.wait_for(ended.wait(), 5)  # and the control connection with them

    asyncio.run(run())


@pytest.mark.parametrize(("mode", "reason"), [("refuse", "Session open refused by peer"), ("drop", None)])
def test_a_refusal_leaves_the_socket_to_us(tmp_path: Path, mode: str, reason: str | None) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        with fake_master(tmp_path / "main.sock", mode) as master, ours, theirs:
            opened, handoff, ended = await _hand(master.path, theirs.fileno())
            assert not opened and handoff.opened is False
            if reason is not None:
                assert handoff.reason == reason
            await asyncio.wait_for(ended.wait(), 5)
            ours.sendall(b"still ours")
            assert theirs.recv(10) == b"still ours"

    asyncio.run(run())


def test_no_master_hands_nothing_over(tmp_path: Path) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            handoff = Handoff(
                asyncio.get_running_loop(), tmp_path / "none.sock", theirs.fileno(), ("h", 1), print, print
            )
            assert not handoff.start()
            assert handoff.reason is not None and "No such file" in handoff.reason

    asyncio.run(run())


@pytest.mark.parametrize(("mode", "timed"), [("open", True), ("refuse", False), ("drop", False)])
def test_a_channel_round_trip_is_timed_through_the_master(tmp_path: Path, mode: str, timed: bool) -> None:
    """What the supervisor measures the link with before a start without the agent: the master's confirmation of a
    channel (one round trip through ssh); a refusal or a master that goes says nothing."""
    with fake_master(tmp_path / "jump.sock", mode) as master:
        rtt = control.channel_round_trip(tmp_path / "jump.sock", ("machine1", 22))
        assert (rtt is not None and 0 <= rtt < 2) is timed
        assert master.requests and (master.requests[0].host, master.requests[0].port) == ("machine1", 22)
    assert control.channel_round_trip(tmp_path / "nothing.sock", ("machine1", 22)) is None


@pytest.mark.parametrize(
    ("mode", "answer"),
    [("refuse", True), ("open", True), ("hang", False), ("drop", False), ("deny", None)],
)
def test_a_round_trip_is_the_far_sides_answer(tmp_path: Path, mode: str, answer: bool | None) -> None:
    """The far sshd's refusal (or an open channel) proves the link; silence until the deadline, or a master that
    closes, does not; an answer of the master's own says nothing either way."""

    async def run() -> None:
        with fake_master(tmp_path / "main.sock", mode) as master:
            t0 = asyncio.get_running_loop().time()
            assert await control.round_trip(master.path, 0.3) is answer
            took = asyncio.get_running_loop().time() - t0
            assert took < (0.6 if mode == "hang" else 0.25)
            [request] = master.requests
            assert (request.host, request.port) == control.PROBE_TARGET and len(request.fds) == 2

    asyncio.run(run())


def test_no_master_no_round_trip(tmp_path: Path) -> None:
    assert asyncio.run(control.round_trip(tmp_path / "none.sock", 1.0)) is False


def test_a_channel_opened_through_the_master_is_timed_and_held_by_its_socket(tmp_path: Path) -> None:
    """The supervisor's health round asks the master for its ecFlow pings' channels: each comes with the time the
    master took to confirm it (one round trip through ssh), and closing the socket ends it (its control connection
    too)."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        with fake_master(tmp_path / "main.sock", "open") as master:
            sock, took = await control.open_channel(master.path, ("machine1", 3141))
            assert 0 <= took < 1 and not sock.getblocking()
            [request] = master.requests
            assert (request.host, request.port) == ("machine1", 3141)
            await loop.sock_sendall(sock, b"ping")
            assert await loop.sock_recv(sock, 16) == b"ping"  # the far end (an echo here)
            ctl = sock.control
            assert ctl is not None
            sock.close()
            assert ctl.fileno() == -1 and sock.control is None
            assert await loop.run_in_executor(None, master.ended.wait, 2)
        with fake_master(tmp_path / "refusing.sock", "refuse"), pytest.raises(ConnectionRefusedError, match="by peer"):
            await control.open_channel(tmp_path / "refusing.sock", ("machine1", 3141))
        with pytest.raises(OSError):
            await control.open_channel(tmp_path / "none.sock", ("machine1", 3141))

    asyncio.run(run())
