"""ecFlow client/server framing: an 8-character hex length header, then that many bytes of cereal JSON."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Generator
from typing import Any

from ecflow_remote.errors import NoReply, ProtocolError, ProtocolMismatch, ReplyTooLarge, size_words

HEADER_SIZE = 8
# The header is eight hex digits, so no message can be longer than this.
MAX_BODY = 0xFFFFFFFF
# The most a reply may announce: the biggest real definitions are tens of MiB, and a header is only a claim (a hostile
# or broken peer's `ffffffff` must not make the client reserve 4 GiB). Read at each reply, so it can be changed here.
MAX_REPLY = 256 * 1024 * 1024
# The body buffer starts at this size (or the announced length if smaller) and doubles as bytes arrive.
_FIRST_BODY_BUFFER = 1024 * 1024
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def encode_header(length: int) -> bytes:
    """The 8-character header for a body of `length` bytes, space padded as ecFlow writes it (`setw(8) << hex`)."""
    if not 0 <= length <= MAX_BODY:
        raise ValueError(f"an ecFlow message body must be 0..{MAX_BODY} bytes, not {length}")
    return f"{length:8x}".encode("ascii")


def decode_header(header: bytes) -> int:
    """The body length from an 8-byte header; ecFlow reads it with `>> hex`, so space or zero padding both work."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError(f"an ecFlow message header is {HEADER_SIZE} bytes, got {len(header)}: {header!r}")
    text = header.decode("ascii", errors="replace").strip(" ")
    if not text or not set(text) <= _HEX_DIGITS:
        raise ProtocolError(
            f"expected an 8-character hex length header, got {header!r}: is this port an ecFlow server?"
        )
    return int(text, 16)


def encode_frame(body: bytes) -> bytes:
    """Header plus body, ready to send."""
    return encode_header(len(body)) + body


# The C string encoder json.dumps(ensure_ascii=False) itself uses.
_dump_str: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring


def _cereal_text(obj: Any) -> str:
    # json.dumps(obj, indent=0) lays things out the same way, but any indent switches json to its pure-Python
    # encoder; requests are small dicts of strings and ints, so walking them here is three times as fast.
    kind = type(obj)
    if kind is str:
        return str(_dump_str(obj))
    if kind is int:
        return int.__repr__(obj)
    if kind is dict and all(type(k) is str for k in obj):
        if not obj:
            return "{}"
        return "{\n" + ",\n".join([_dump_str(k) + ": " + _cereal_text(v) for k, v in obj.items()]) + "\n}"
    if kind is list:
        if not obj:
            return "[]"
        return "[\n" + ",\n".join([_cereal_text(v) for v in obj]) + "\n]"
    # Anything else (bool, float, None, tuples, subclasses, non-string keys): json's own rules.
    return json.dumps(obj, indent=0, ensure_ascii=False)


def encode_json(obj: Any) -> bytes:
    """JSON laid out exactly as cereal writes it (one member a line, no indent), so requests match ecflow_client's."""
    return _cereal_text(obj).encode("utf-8")


def decode_json(body: bytes) -> dict[str, Any]:
    """Parse a reply body; anything but a JSON object is a protocol error."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the reply is not JSON ({e}); first bytes: {body[:60]!r}") from e
    except RecursionError:
        # Python's json recurses per nesting level; ecFlow's replies nest a dozen levels, never hundreds.
        raise ProtocolError(f"the reply nests JSON too deeply to be ecFlow's; first bytes: {body[:60]!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"the reply is JSON but not an object: {body[:60]!r}")
    return obj


def _no_reply(where: str, partial: bytes) -> ProtocolError:
    if not partial:
        return NoReply(
            f"{where} closed the connection without a reply: the server is not running (through a tunnel, a dead "
            "server looks like this), or it rejected the request, or this port is not an ecFlow server"
        )
    return ProtocolError(f"{where} closed the connection inside the reply header: {partial!r}")


def speaks(where: str, words: str, protocol: str) -> str:
    """The one line for a server that speaks another protocol than the one assumed."""
    return f'{where} speaks {words}: set protocol = "{protocol}" for it in the profile'


def _short_body(where: str, got: int, length: int) -> ProtocolError:
    return ProtocolError(f"{where} closed the connection after {got} of {length} reply bytes; try again")


# What one recv asks for: a whole small reply (ping, version, a node) arrives in the first one.
_FIRST_READ = 64 * 1024


def _too_large(where: str, length: int, limit: int) -> ReplyTooLarge:
    return ReplyTooLarge(
        f"{where} announced a reply of {length} bytes, more than the {size_words(limit)} this client accepts "
        "(ecflow_remote.clients.ecflow.wire.MAX_REPLY): this port is not an ecFlow server, or the server is broken"
    )


def _first_part(first: bytes, where: str) -> tuple[int, bytes | None]:
    """(body length, the whole body if `first` holds it) from the bytes of the first read(s)."""
    if first.startswith(b"HTTP/"):
        # An HTTP server (ecflow_server --http) answers our framing with an HTTP error.
        raise ProtocolMismatch(speaks(where, "HTTP", "http"))
    length = decode_header(first[:HEADER_SIZE])
    if length > MAX_REPLY:
        raise _too_large(where, length, MAX_REPLY)
    end = HEADER_SIZE + length
    if len(first) >= end:
        return length, first[HEADER_SIZE:end]
    return length, None


# A read the frame logic asks for: up to N bytes (int), or bytes into this buffer (memoryview, recv_into).
_Read = int | memoryview


def _frame_reads(where: str) -> Generator[_Read, Any, bytes]:
    """The frame logic once, for blocking and asyncio sockets alike: it yields the read it needs next and is sent
    what that read returned (bytes for an int, a count for a buffer); a close before the end is an error."""
    first: bytes = yield _FIRST_READ
    while len(first) < HEADER_SIZE:
        more: bytes = yield _FIRST_READ
        if not more:
            raise _no_reply(where, first)
        first += more
    length, whole = _first_part(first, where)
    if whole is not None:
        return whole
    # A big reply (a whole definition): the rest straight into buffers made as the bytes come, each as big as what
    # arrived so far (so never more than twice that), never one sized from the header alone.
    got = len(first) - HEADER_SIZE
    parts: list[bytes | bytearray] = [first[HEADER_SIZE:]]
    while got < length:
        segment = bytearray(min(length - got, max(_FIRST_BODY_BUFFER, got)))
        view = memoryview(segment)
        filled = 0
        while filled < len(segment):
            n: int = yield view[filled:]
            if not n:
                raise _short_body(where, got + filled, length)
            filled += n
        got += filled
        parts.append(segment)
    return b"".join(parts)


def recv_frame(sock: socket.socket, where: str = "the server", timeout: float | None = None) -> bytes:
    """One message from a blocking socket; a connection that closes early is an error, never a short reply.
    `timeout` bounds the whole reply (TimeoutError), None uses the socket's."""
    deadline = None if timeout is None else time.monotonic() + timeout
    reads = _frame_reads(where)
    want = next(reads)
    try:
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                sock.settimeout(left)
            want = reads.send(sock.recv(want) if isinstance(want, int) else sock.recv_into(want))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def sock_read_frame(sock: socket.socket, where: str = "the server") -> bytes:
    """recv_frame for a non-blocking socket through the running loop's sock_recv / sock_recv_into: no streams, and
    no timeout of its own (the caller bounds the whole exchange with one)."""
    loop = asyncio.get_running_loop()
    reads = _frame_reads(where)
    want = next(reads)
    try:
        while True:
            got = await (loop.sock_recv(sock, want) if isinstance(want, int) else loop.sock_recv_into(sock, want))
            want = reads.send(got)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
