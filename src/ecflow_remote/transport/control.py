"""OpenSSH's ControlMaster protocol: hand a connected socket to the master as a stdio forward; probe its link."""

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
class Reply:
    """One packet from the master: its type and what this client needs of it."""

    type: int
    request_id: int | None = None  # None for HELLO
    value: int | None = None  # HELLO: the master's version; SESSION_OPENED: the session (channel) id
    reason: str | None = None  # PERMISSION_DENIED, FAILURE: the master's words


def decode(body: bytes) -> Reply:
    """A packet's body (without its length) as a Reply; ControlError when it is cut short."""
    try:
        (kind,) = struct.unpack_from(">I", body, 0)
        if kind == MUX_MSG_HELLO:  # extensions (none defined) ignored
            return Reply(kind, value=struct.unpack_from(">I", body, 4)[0])
        (request_id,) = struct.unpack_from(">I", body, 4)
        if kind == MUX_S_SESSION_OPENED:
            return Reply(kind, request_id, value=struct.unpack_from(">I", body, 8)[0])
        if kind in (MUX_S_PERMISSION_DENIED, MUX_S_FAILURE):
            (length,) = struct.unpack_from(">I", body, 8)
            reason = body[12 : 12 + length]
            if len(reason) != length:
                raise ControlError(f"reply 0x{kind:08x} cut short")
            return Reply(kind, request_id, reason=reason.decode(errors="replace"))
        return Reply(kind, request_id)
    except struct.error:
        raise ControlError(f"a {len(body)}-byte packet from the master is cut short") from None


def split(buffer: bytearray) -> list[Reply]:
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


def channel_round_trip(control: Path, target: tuple[str, int], timeout: float = 2.0) -> float | None:
    """Seconds from asking the master at `control` for a channel to host:port until it confirms it: one round trip
    through the ssh connection (and the far side's connect()); None when it cannot say. The channel carries nothing
    and ends at once (its end is one end of a socketpair, closed here)."""
    ours, theirs = socket.socketpair()
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        ctl.settimeout(timeout)
        ctl.connect(str(control))
        asked = time.monotonic()
        ctl.sendall(hello() + stdio_forward(*target))
        for _ in range(2):
            socket.send_fds(ctl, [b"\0"], [theirs.fileno()])
        buffer = bytearray()
        while data := ctl.recv(4096):
            buffer += data
            for reply in split(buffer):
                if reply.type == MUX_S_SESSION_OPENED:
                    return time.monotonic() - asked
                if reply.type != MUX_MSG_HELLO:
                    return None
        return None
    except (OSError, ValueError, ControlError):
        return None
    finally:
        ctl.close()
        ours.close()
        theirs.close()


class Handoff:
    """One connected socket handed to the master at `control` as a stdio forward to host:port, and the control
    connection that keeps it alive: `decided(True)` once the master has it (the caller closes its own copy then),
    `decided(False)` if it refused or went away first (the socket is untouched: the caller serves it itself);
    `ended(self)` once the control connection is closed.

    The far side's EOF reaches the client once the channel is closed, not as a half-close (module comment)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        control: Path,
        fd: int,
        target: tuple[str, int],
        decided: Callable[[bool], None],
        ended: Callable[[Handoff], None],
    ) -> None:
        self.loop = loop
        self.control = control
        self.fd = fd
        self.target = target
        self.decided = decided
        self.ended = ended
        self.opened: bool | None = None  # the master's answer, once given
        self.reason: str | None = None  # why not, when refused
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def start(self) -> bool:
        """Send the request and the fds, without waiting (False: nothing was handed over, the master cannot be
        reached now; the socket is the caller's alone)."""
        host, port = self.target
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ctl.setblocking(False)
            ctl.connect(str(self.control))  # a full accept queue (EAGAIN) is a refusal here, not a wait
            # Not waiting for the master's HELLO (it is read with the answer): one turn of each side less.
            ctl.send(hello() + stdio_forward(host, port))  # a few dozen bytes into an empty buffer: all or an error
            for _ in range(2):  # the channel's read end, then its write end: the same socket
                socket.send_fds(ctl, [b"\0"], [self.fd])
        except (OSError, ValueError) as e:
            # The master may hold a request it waits for fds to: closing the connection ends that wait (recvmsg 0).
            ctl.close()
            self.reason = str(e)
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
            self.reason = str(e)
            self.close()
            return
        for reply in replies:
            self._answer(reply)

    def _answer(self, reply: Reply) -> None:
        if self.opened is not None:
            return  # nothing more is asked of the master; it closes the connection when the channel ends
        if reply.type == MUX_MSG_HELLO:
            if reply.value != VERSION:
                self.reason = f"mux protocol {reply.value} (not {VERSION})"
                self.close()
        elif reply.type == MUX_S_SESSION_OPENED and reply.request_id == REQUEST_ID:
            self._decide(True)
        elif reply.request_id == REQUEST_ID:
            self.reason = reply.reason or f"reply 0x{reply.type:08x}"
            self.close()

    def _decide(self, opened: bool) -> None:
        if self.opened is None:
            self.opened = opened
            self.decided(opened)

    def close(self) -> None:
        """Close the control connection (a forward already open is ended by the master); undecided: refused."""
        ctl, self._sock = self._sock, None
        if ctl is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(ctl.fileno())
            ctl.close()
        self._decide(False)
        if ctl is not None:
            self.ended(self)


async def round_trip(control: Path, timeout: float) -> bool | None:
    """Whether the master's connection carries a request to the far side and back within `timeout`: a stdio forward
    to PROBE_TARGET, which the master sends as a channel open and answers only once the far sshd has (`ssh -O check`
    asks the master process alone, which lives on over a dead link). True: the far side answered; False: no answer
    in time, or no master; None: the master answered by itself (it cannot tell)."""
    loop = asyncio.get_running_loop()
    mine, theirs = socket.socketpair()  # the channel's ends, which the master wants even for a forward that fails
    try:
        ctl = _ask(control, PROBE_TARGET, theirs)
    except OSError:
        mine.close()
        theirs.close()
        return False
    try:
        theirs.close()
        reply = await asyncio.wait_for(_reply(loop, ctl), timeout)
    except TimeoutError:
        return False
    except ControlError:
        return None
    finally:
        ctl.close()  # a channel open still pending is dropped by the master with its control connection
        mine.close()
        theirs.close()
    if reply is None:
        return False  # the master went away
    if reply.type == MUX_S_SESSION_OPENED:
        return True
    return True if reply.reason == PEER_REFUSED else None


class HeldChannel(socket.socket):
    """Our end of a stdio forward's socket pair (open_channel): closing it also closes the control connection the
    master keeps the channel open for."""

    control: socket.socket | None = None

    def close(self) -> None:
        super().close()
        ctl, self.control = self.control, None
        if ctl is not None:
            ctl.close()


async def open_channel(control: Path, target: tuple[str, int]) -> tuple[HeldChannel, float]:
    """A channel to host:port through the master at `control`, as a non-blocking socket, once the far side has
    opened it, and the seconds that took: one round trip through ssh (and the far side's connect()). OSError when
    the master cannot be reached or refuses it (its words); the caller bounds the wait."""
    loop = asyncio.get_running_loop()
    mine, theirs = socket.socketpair()
    held = HeldChannel(mine.family, mine.type, mine.proto, fileno=mine.detach())
    try:
        asked = loop.time()
        held.control = _ask(control, target, theirs)
        theirs.close()  # the master holds its own copies
        try:
            reply = await _reply(loop, held.control)
        except ControlError as e:
            raise ConnectionError(str(e)) from None
        if reply is None or reply.type != MUX_S_SESSION_OPENED:
            raise ConnectionRefusedError(reply.reason if reply and reply.reason else "the master did not open it")
        took = loop.time() - asked
        held.setblocking(False)
    except BaseException:
        held.close()
        theirs.close()
        raise
    return held, took


def _ask(control: Path, target: tuple[str, int], fd: socket.socket) -> socket.socket:
    """A control connection that has asked the master for a stdio forward to `target` over `fd` (OSError: no)."""
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        ctl.setblocking(False)
        ctl.connect(str(control))
        ctl.send(hello() + _stdio_forward(*target, REQUEST_ID))
        for _ in range(2):
            socket.send_fds(ctl, [b"\0"], [fd.fileno()])
    except BaseException:
        ctl.close()
        raise
    return ctl


async def _reply(loop: asyncio.AbstractEventLoop, ctl: socket.socket) -> Reply | None:
    """The master's answer to the request (None: it went away; ControlError: its words cannot be read)."""
    buffer = bytearray()
    while True:
        try:
            data = await loop.sock_recv(ctl, 4096)
        except OSError:
            return None
        if not data:
            return None
        buffer += data
        for reply in split(buffer):
            if reply.request_id == REQUEST_ID:
                return reply
