"""control.py: OpenSSH's mux protocol, byte for byte as mux.c (9.2p1) writes and reads it, and one handoff."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest
from tests.unit.transport.fake_master import fake_master

from ecflow_remote.transport import control
from ecflow_remote.transport.control import Answer, ControlError, Handoff, MasterReply


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
        (_u32(0x00000001) + _u32(4), MasterReply(control.MUX_MSG_HELLO, value=4)),
        (_u32(0x00000001) + _u32(4) + _u32(3) + b"ext" + _u32(0), MasterReply(control.MUX_MSG_HELLO, value=4)),
        (_u32(0x80000006) + _u32(1) + _u32(9), MasterReply(control.MUX_S_SESSION_OPENED, 1, value=9)),
        (
            _u32(0x80000003) + _u32(1) + _u32(28) + b"Session open refused by peer",
            MasterReply(control.MUX_S_FAILURE, 1, reason="Session open refused by peer"),
        ),
        (
            _u32(0x80000002) + _u32(1) + _u32(17) + b"Permission denied",
            MasterReply(control.MUX_S_PERMISSION_DENIED, 1, reason="Permission denied"),
        ),
        (_u32(0x80000004) + _u32(9) + _u32(0), MasterReply(control.MUX_S_EXIT_MESSAGE, 9)),
    ],
)
def test_decode(body: bytes, reply: MasterReply) -> None:
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
    assert control.split(buffer) == [MasterReply(control.MUX_MSG_HELLO, value=4)]
    assert buffer == opened[:7]
    buffer += opened[7:]
    assert control.split(buffer) == [MasterReply(control.MUX_S_SESSION_OPENED, 1, value=3)]
    assert buffer == b""


def test_split_refuses_a_packet_larger_than_the_master_sends() -> None:
    with pytest.raises(ControlError, match="at most"):
        control.split(bytearray(_u32(256 * 1024 + 1) + b"x"))


def test_a_request_is_hello_then_the_forward_and_the_probe_may_ask_port_0() -> None:
    assert control.request(("machine1", 4141)) == control.hello() + control.stdio_forward("machine1", 4141)
    probe = control.request(control.PROBE_TARGET)
    assert probe.startswith(control.hello()) and probe.endswith(b"127.0.0.1" + _u32(0))
    with pytest.raises(ValueError, match="not a TCP port"):
        control.request(("machine1", 0))


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (MasterReply(control.MUX_MSG_HELLO, value=4), None),
        (MasterReply(control.MUX_MSG_HELLO, value=3), (False, "mux protocol 3 (not 4)")),
        (MasterReply(control.MUX_S_SESSION_OPENED, 1, value=9), (True, None)),
        (MasterReply(control.MUX_S_SESSION_OPENED, 2, value=9), None),  # not our request
        (MasterReply(control.MUX_S_FAILURE, 1, reason="Session open refused by peer"), (False, control.PEER_REFUSED)),
        (MasterReply(control.MUX_S_PERMISSION_DENIED, 1, reason="Permission denied"), (False, "Permission denied")),
        (MasterReply(control.MUX_S_EXIT_MESSAGE, 1), (False, "reply 0x80000004")),
    ],
)
def test_judge_reads_the_masters_answer_to_our_request(
    reply: MasterReply, verdict: tuple[bool, str | None] | None
) -> None:
    assert control.judge(reply) == verdict


@pytest.mark.parametrize(
    ("answer", "answered", "by_far_side"),
    [
        (Answer(True, 0.01), True, True),
        (Answer(False, 0.01, control.PEER_REFUSED), True, True),  # the far sshd said no: it was reached
        (Answer(False, 0.01, "Permission denied"), True, False),  # the master's own answer
        (Answer(False, None, "no answer within 3 s"), False, False),
        (Answer(False), False, False),
    ],
)
def test_what_an_answer_tells(answer: Answer, answered: bool, by_far_side: bool) -> None:
    assert (answer.answered, answer.by_far_side) == (answered, by_far_side)


async def _hand(path: Path, fd: int) -> tuple[Answer, Handoff, asyncio.Event]:
    loop = asyncio.get_running_loop()
    decided: asyncio.Future[Answer] = loop.create_future()
    ended = asyncio.Event()
    handoff = Handoff(loop, path, fd, ("machine1", 4141), decided.set_result, lambda h: ended.set())
    assert handoff.start()
    return await asyncio.wait_for(decided, 5), handoff, ended


def test_a_socket_handed_over_is_served_by_the_master_and_ends_with_its_channel(tmp_path: Path) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        with fake_master(tmp_path / "main.sock") as master, ours:
            answer, handoff, ended = await _hand(master.path, theirs.fileno())
            assert answer.opened and answer.reason is None and handoff.answer is answer
            assert answer.seconds is not None and 0 <= answer.seconds < 5
            theirs.close()  # our copy: the master's keep the connection
            [request] = master.requests
            assert (request.host, request.port) == ("machine1", 4141) and len(request.fds) == 2
            ours.sendall(b"ping")
            assert ours.recv(4) == b"ping"  # through the two fds the master got: one socket
            ours.shutdown(socket.SHUT_WR)
            assert ours.recv(4) == b""  # the master closed both of its fds: the socket is gone
            await asyncio.wait_for(ended.wait(), 5)  # and the control connection with them

    asyncio.run(run())


@pytest.mark.parametrize(
    ("mode", "reason", "answered"), [("refuse", "Session open refused by peer", True), ("drop", None, False)]
)
def test_a_refusal_leaves_the_socket_to_us(tmp_path: Path, mode: str, reason: str | None, answered: bool) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        with fake_master(tmp_path / "main.sock", mode) as master, ours, theirs:
            answer, handoff, ended = await _hand(master.path, theirs.fileno())
            assert not answer.opened and handoff.answer is answer
            assert answer.reason == reason and answer.answered is answered
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
            assert handoff.answer is not None and not handoff.answer.answered
            assert handoff.answer.reason is not None and "No such file" in handoff.answer.reason

    asyncio.run(run())


@pytest.mark.parametrize(("mode", "timed"), [("open", True), ("refuse", False), ("drop", False)])
def test_a_channel_is_timed_through_the_master(tmp_path: Path, mode: str, timed: bool) -> None:
    """What the supervisor measures the link with before a start without the agent: the master's confirmation of a
    channel (one round trip through ssh); a refusal or a master that goes opens nothing."""
    with fake_master(tmp_path / "jump.sock", mode) as master:
        answer = asyncio.run(control.ask(tmp_path / "jump.sock", ("machine1", 22), 2.0))
        assert answer.opened is timed
        if timed:
            assert answer.seconds is not None and 0 <= answer.seconds < 2
        assert master.requests and (master.requests[0].host, master.requests[0].port) == ("machine1", 22)
    gone = asyncio.run(control.ask(tmp_path / "nothing.sock", ("machine1", 22), 2.0))
    assert not gone.opened and not gone.answered and gone.reason is not None and "No such file" in gone.reason


@pytest.mark.parametrize(
    ("mode", "answered", "by_far_side"),
    [
        ("refuse", True, True),
        ("open", True, True),
        ("hang", False, False),
        ("drop", False, False),
        ("deny", True, False),
    ],
)
def test_a_probe_is_the_far_sides_answer(tmp_path: Path, mode: str, answered: bool, by_far_side: bool) -> None:
    """The far sshd's refusal (or an open channel) proves the link; silence until the deadline, or a master that
    closes, does not; an answer of the master's own says nothing either way."""

    async def run() -> None:
        with fake_master(tmp_path / "main.sock", mode) as master:
            t0 = asyncio.get_running_loop().time()
            answer = await control.ask(master.path, control.PROBE_TARGET, 0.3)
            assert (answer.answered, answer.by_far_side) == (answered, by_far_side)
            if mode == "hang":
                assert answer.reason == "no answer within 0.3 s"
            took = asyncio.get_running_loop().time() - t0
            assert took < (0.6 if mode == "hang" else 0.25)
            [request] = master.requests
            assert (request.host, request.port) == control.PROBE_TARGET and len(request.fds) == 2

    asyncio.run(run())


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
            handoff = sock.handoff
            assert handoff is not None and handoff.answer is not None and handoff.answer.opened
            sock.close()
            assert handoff._sock is None and sock.handoff is None  # its control connection closed with it
            assert await loop.run_in_executor(None, master.ended.wait, 2)
        with fake_master(tmp_path / "refusing.sock", "refuse"), pytest.raises(ConnectionRefusedError, match="by peer"):
            await control.open_channel(tmp_path / "refusing.sock", ("machine1", 3141))
        with pytest.raises(OSError):
            await control.open_channel(tmp_path / "none.sock", ("machine1", 3141))

    asyncio.run(run())
