"""ecFlow client/server framing: an 8-character hex length header, then that many bytes of cereal JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ecflow_remote.errors import EcflowRemoteError

HEADER_SIZE = 8
# The header is eight hex digits, so no message can be longer than this.
MAX_BODY = 0xFFFFFFFF
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class ProtocolError(EcflowRemoteError):
    """The peer sent bytes that are not an ecFlow reply (wrong port, a proxy's banner, a cut-off message)."""


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


def encode_json(obj: Any) -> bytes:
    """JSON laid out exactly as cereal writes it (one member a line, no indent), so requests match ecflow_client's."""
    return json.dumps(obj, indent=0, ensure_ascii=False).encode("utf-8")


def decode_json(body: bytes) -> dict[str, Any]:
    """Parse a reply body; anything but a JSON object is a protocol error."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the reply is not JSON ({e}); first bytes: {body[:60]!r}") from e
    if not isinstance(obj, dict):
        raise ProtocolError(f"the reply is JSON but not an object: {body[:60]!r}")
    return obj


async def read_frame(reader: asyncio.StreamReader, where: str = "the server") -> bytes:
    """Read one message; a connection that closes early is an error, never a short reply."""
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise ProtocolError(
                f"{where} closed the connection without a reply; it may have rejected the request "
                "or this port is not an ecFlow server"
            ) from e
        raise ProtocolError(f"{where} closed the connection inside the reply header: {e.partial!r}") from e
    length = decode_header(header)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as e:
        raise ProtocolError(
            f"{where} closed the connection after {len(e.partial)} of {length} reply bytes; try again"
        ) from e
