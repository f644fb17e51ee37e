"""OpenSSH's ControlMaster protocol: ask the master for a channel with a socket of ours; its typed answer."""

# What `ssh -S sock -W host:port` does as a mux client (PROTOCOL.mux §3; mux.c, OpenSSH 9.2p1): HELLO, then
# MUX_C_NEW_STDIO_FWD followed by two fds (the channel's read and write ends) passed with SCM_RIGHTS, one fd per
# sendmsg with a 1-byte payload (monitor_fdpass.c mm_send_fd). The master reads packets with exact-length reads so
# that fds can follow them, then blocks (poll, no timeout) in recvmsg until both fds are there: a packet is never
# sent without its fds. It answers MUX_S_SESSION_OPENED once the far side has opened the direct-tcpip channel, and
# the control connection must then stay open for the channel's life (the master kills the channel when it closes,
# and closes it when the channel ends).
#
# Given the same socket as two fds, the master never shut()s it down: at the far side's EOF it close()s its write fd
# only, which sends no FIN while the read fd is open. The FIN still comes: a stdio forward's channel has force_drain
# set, so that EOF also ends its input (channels.c channel_input_ieof), both sides exchange CLOSE, and freeing the
# channel closes both fds (one round trip later than a shutdown; seen with ssh -vvv: "FORCE input drain"). A client
# that reads until EOF (a log server's) gets it; what it would send after the far side's EOF is dropped.

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VERSION = 4  # SSHMUX_VER
MUX_MSG_HELLO = 0x00000001
MUX_C_NEW_STDIO_FWD = 0x10000008
MUX_S_OK = 0x80000001
MUX_S_PERMISSION_DENIED = 0x80000002
MUX_S_FAILURE = 0x80000003
MUX_S_EXIT_MESSAGE = 0x80000004
MUX_S_SESSION_OPENED = 0x80000006
MAX_PACKET = 256 * 1024  # CHANNEL_MUX_MAX_PACKET: the master drops a control connection sending more
REQUEST_ID = 1  # one request per control connection
# A probe's target (round_trip): nothing listens on port 0, so the far sshd refuses the channel at once (its log
# says "connect_to 127.0.0.1 port 0: failed.") and touches nothing at the Centre.
PROBE_TARGET = ("127.0.0.1", 0)
PEER_REFUSED = "Session open refused by peer"  # mux.c mux_stdio_confirm: the far side's answer, not the master's


class ControlError(ValueError):
    """The master's packet cannot be read."""


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _string(value: bytes) -> bytes:
    return _u32(len(value)) + value


def packet(body: bytes) -> bytes:
    """A mux packet: its length, then its body (type first)."""
    return _u32(len(body)) + body


def hello() -> bytes:
    """The client's MUX_MSG_HELLO (protocol version 4, no extensions)."""
    return packet(_u32(MUX_MSG_HELLO) + _u32(VERSION))


def stdio_forward(host: str, port: int, request_id: int = REQUEST_ID) -> bytes:
    """MUX_C_NEW_STDIO_FWD to host:port (PROTOCOL.mux calls the port a string; mux.c sends and reads a uint32)."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port")
    return _stdio_forward(host, port, request_id)


def _stdio_forward(host: str, port: int, request_id: int) -> bytes:
    body = _u32(MUX_C_NEW_STDIO_FWD) + _u32(request_id) + _string(b"") + _string(host.encode()) + _u32(port)
    return packet(body)


@dataclass(frozen=True)
class MasterReply:
    """One packet from the master: its type and what this client needs of it."""

    type: int
    request_id: int | None = None  # None for HELLO
    value: int | None = None  # HELLO: the master's version; SESSION_OPENED: the session (channel) id
    reason: str | None = None  # PERMISSION_DENIED, FAILURE: the master's words


def decode(body: bytes) -> MasterReply:
    """A packet's body (without its length) as a MasterReply; ControlError when it is cut short."""
    try:
        (kind,) = struct.unpack_from(">I", body, 0)
        if kind == MUX_MSG_HELLO:  # extensions (none defined) ignored
            return MasterReply(kind, value=struct.unpack_from(">I", body, 4)[0])
        (request_id,) = struct.unpack_from(">I", body, 4)
        if kind == MUX_S_SESSION_OPENED:
            return MasterReply(kind, request_id, value=struct.unpack_from(">I", body, 8)[0])
        if kind in (MUX_S_PERMISSION_DENIED, MUX_S_FAILURE):
            (length,) = struct.unpack_from(">I", body, 8)
            reason = body[12 : 12 + length]
            if len(reason) != length:
                raise ControlError(f"reply 0x{kind:08x} cut short")
            return MasterReply(kind, request_id, reason=reason.decode(errors="replace"))
        return MasterReply(kind, request_id)
    except struct.error:
        raise ControlError(f"a {len(body)}-byte packet from the master is cut short") from None


def split(buffer: bytearray) -> list[MasterReply]:
    """The whole packets at the head of `buffer`, taken out of it (a partial one stays for the next read)."""
    replies = []
    while len(buffer) >= 4:
        (length,) = struct.unpack_from(">I", buffer, 0)
        if length > MAX_PACKET:
            raise ControlError(f"a {length}-byte packet from the master (at most {MAX_PACKET})")
        if len(buffer) < 4 + length:
            break
        replies.append(decode(bytes(buffer[4 : 4 + length])))
        del buffer[: 4 + length]
    return replies


@dataclass(frozen=True)
class Answer:
    """The master's answer to one channel request: whether the channel opened, how long the answer took, and why
    not (ssh's words: the master's reply, or why the master could not be asked)."""

    opened: bool
    # From the request to the master's answer (one round trip through the ssh connection and the far side's
    # connect()); None: no answer (no master, it went away, or none in time).
    seconds: float | None = None
    reason: str | None = None

    @property
    def answered(self) -> bool:
        """The master answered (whatever it said)."""
        return self.seconds is not None

    @property
    def by_far_side(self) -> bool:
        """The far sshd answered (opened, or refused): the request went through the connection and back."""
        return self.opened or self.reason == PEER_REFUSED


def request(target: tuple[str, int]) -> bytes:
    """What a client sends first: HELLO (not waiting for the master's: one turn of each side less), then the stdio
    forward to host:port (PROBE_TARGET's port 0 included: it is asked on purpose)."""
    host, port = target
    forward = _stdio_forward(host, port, REQUEST_ID) if target == PROBE_TARGET else stdio_forward(host, port)
    return hello() + forward


def judge(reply: MasterReply) -> tuple[bool, str | None] | None:
    """What one packet from the master says of our request: (opened, ssh's words when not); None: nothing yet."""
    if reply.type == MUX_MSG_HELLO:
        return None if reply.value == VERSION else (False, f"mux protocol {reply.value} (not {VERSION})")
    if reply.request_id != REQUEST_ID:
        return None
    if reply.type == MUX_S_SESSION_OPENED:
        return True, None
    return False, reply.reason or f"reply 0x{reply.type:08x}"


class Handoff:
    """One connected socket handed to the master at `control` as a stdio forward to host:port, and the control
    connection that keeps it alive: `decided(answer)` once the master has answered (opened: the master has the
    socket, the caller closes its own copy), or went away first (not opened: the socket is untouched, the caller
    serves it itself); `ended(self)` once the control connection is closed. `answer` keeps what was decided.

    The far side's EOF reaches the client once the channel is closed, not as a half-close (module comment)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        control: Path,
        fd: int,
        target: tuple[str, int],
        decided: Callable[[Answer], None],
        ended: Callable[[Handoff], None],
    ) -> None:
        self.loop = loop
        self.control = control
        self.fd = fd
        self.target = target
        self.decided = decided
        self.ended = ended
        self.answer: Answer | None = None
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._asked = 0.0

    def start(self) -> bool:
        """Send the request and the fds, without waiting (False: nothing was handed over, the master cannot be
        reached now; the socket is the caller's alone, and `answer` says why)."""
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ctl.setblocking(False)
            ctl.connect(str(self.control))  # a full accept queue (EAGAIN) is a refusal here, not a wait
            self._asked = time.monotonic()
            ctl.send(request(self.target))  # a few dozen bytes into an empty buffer: all or an error
            for _ in range(2):  # the channel's read end, then its write end: the same socket
                socket.send_fds(ctl, [b"\0"], [self.fd])
        except (OSError, ValueError) as e:
            # The master may hold a request it waits for fds to: closing the connection ends that wait (recvmsg 0).
            ctl.close()
            self.answer = Answer(False, reason=str(e))
            return False
        self._sock = ctl
        self.loop.add_reader(ctl.fileno(), self._readable)
        return True

    def _readable(self) -> None:
        ctl = self._sock
        if ctl is None:
            return
        try:
            data = ctl.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self._buffer += data
        try:
            replies = split(self._buffer)
        except ControlError as e:
            self._end(str(e), answered=True)
            return
        for reply in replies:
            verdict = judge(reply) if self.answer is None else None  # once decided, nothing more is asked of it
            if verdict is None:
                continue
            opened, reason = verdict
            if opened:
                self._decide(True)
            else:
                self._end(reason, answered=True)

    def _decide(self, opened: bool, reason: str | None = None, answered: bool = True) -> None:
        if self.answer is None:
            seconds = time.monotonic() - self._asked if answered else None
            self.answer = Answer(opened, seconds, reason)
            self.decided(self.answer)

    def close(self, reason: str | None = None) -> None:
        """Close the control connection (a forward already open is ended by the master); undecided: not opened,
        for `reason`."""
        self._end(reason, answered=False)

    def _end(self, reason: str | None, answered: bool) -> None:
        ctl, self._sock = self._sock, None
        if ctl is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(ctl.fileno())
            ctl.close()
        self._decide(False, reason, answered)
        if ctl is not None:
            self.ended(self)


async def ask(control: Path, target: tuple[str, int], timeout: float) -> Answer:
    """Ask the master at `control` for a channel to host:port and wait (at most `timeout`) for its answer: the one
    way to time the link through ssh (seconds), see whether the far side answers at all (PROBE_TARGET: the far sshd
    refuses port 0 at once, which `ssh -O check` cannot tell: it asks the master process alone, which lives on over
    a dead link), or hear ssh's words for a refusal. The channel carries nothing and ends at once: its end is one
    end of a socketpair of ours, closed here with the control connection."""
    mine, theirs = socket.socketpair()  # the channel's ends, which the master wants even for a forward that fails
    handoff, answered = _handoff(control, theirs, target)
    try:
        if handoff.start():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered, timeout)
        handoff.close(f"no answer within {timeout:g} s")  # a channel open still pending is dropped by the master
        assert handoff.answer is not None
        return handoff.answer
    finally:
        handoff.close()
        mine.close()
        theirs.close()


class HeldChannel(socket.socket):
    """Our end of a stdio forward's socket pair (open_channel): closing it also closes the control connection the
    master keeps the channel open for."""

    handoff: Handoff | None = None

    def close(self) -> None:
        super().close()
        handoff, self.handoff = self.handoff, None
        if handoff is not None:
            handoff.close()


async def open_channel(control: Path, target: tuple[str, int]) -> tuple[HeldChannel, float]:
    """A channel to host:port through the master at `control`, as a non-blocking socket, once the far side has
    opened it, and the seconds that took: one round trip through ssh (and the far side's connect()). OSError when
    the master cannot be reached or refuses it (its words); the caller bounds the wait."""
    mine, theirs = socket.socketpair()
    held = HeldChannel(mine.family, mine.type, mine.proto, fileno=mine.detach())
    try:
        held.handoff, answered = _handoff(control, theirs, target)
        started = held.handoff.start()
        theirs.close()  # the master holds its own copies
        answer = await answered if started else held.handoff.answer
        assert answer is not None
        if not answer.opened or answer.seconds is None:
            raise ConnectionRefusedError(answer.reason or "the master did not open it")
        held.setblocking(False)
    except BaseException:
        held.close()
        theirs.close()
        raise
    return held, answer.seconds


def _handoff(control: Path, end: socket.socket, target: tuple[str, int]) -> tuple[Handoff, asyncio.Future[Answer]]:
    """A Handoff of `end` to host:port (not started) and the future its answer sets."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[Answer] = loop.create_future()

    def decided(answer: Answer) -> None:
        if not answered.done():
            answered.set_result(answer)

    return Handoff(loop, control, end.fileno(), target, decided, lambda _: None), answered
