"""The agent's protocol basics, on both ends: frame types, defaults, the protocol's errors, compression policy.

Every module of the far-side program (frames, channel, mux, far) runs twice: imported on the laptop (Python
3.11) and, concatenated into one script by bootstrap.far_source(), sent over ssh's stdin to the workstation's
python3 >= 3.6, standard library only. So: no dataclasses, no asyncio.run, no walrus, no `from __future__`,
every annotation that 3.6 cannot evaluate at definition time is quoted or under TYPE_CHECKING, and imports
between these modules are `from ecflow_remote.transport.agent.<module> import ...` statements of their own
(the concatenation drops them). tests/unit/transport/agent checks the syntax against 3.6.

Wire format: a 9-byte header (type, stream id, payload length; network order) then the payload.
"""

import struct
import zlib
from typing import TYPE_CHECKING

VERSION = 1
CAPABILITIES = ["open", "zlib", "ping", "credit", "ack"]

HELLO = 1  # JSON: version, capabilities, the start marker, the far side's python and pid
OPEN = 2  # port (2 bytes) + host (UTF-8): connect there, name resolved at the far end
OPENED = 3  # the far side's connect() succeeded
OPEN_FAILED = 4  # JSON: code (refused | unknown-host | timeout | unreachable | error) and message
DATA = 5
DATA_Z = 6  # raw deflate, one stream-wide compressor, flushed (Z_SYNC_FLUSH) at the end of every frame
CREDIT = 7  # 4 bytes: the receiver consumed that many more bytes; the sender may send that many more
EOF = 8  # the sender will send no more data on this stream (half close)
RESET = 9  # UTF-8 reason: the stream is gone in both directions
PING = 10  # opaque payload, echoed in PONG
PONG = 11
ACK = 12  # 8 bytes: the wire bytes the sender has read in all (pacing: pace.py)

NAMES = {
    HELLO: "HELLO",
    OPEN: "OPEN",
    OPENED: "OPENED",
    OPEN_FAILED: "OPEN_FAILED",
    DATA: "DATA",
    DATA_Z: "DATA_Z",
    CREDIT: "CREDIT",
    EOF: "EOF",
    RESET: "RESET",
    PING: "PING",
    PONG: "PONG",
    ACK: "ACK",
}

HEADER = struct.Struct("!BII")
CREDIT_BODY = struct.Struct("!I")
ACK_BODY = struct.Struct("!Q")
PORT = struct.Struct("!H")
MAX_PAYLOAD = 1 << 20  # a larger length is a broken pipe (a stray byte), not a frame

# Defaults, chosen by measurement (bench/agent.py):
# - the window is per stream and counted in raw bytes: 4 MiB fills a 100 Mbit/s link at 40 ms RTT (500 KB) with
#   room for compressed text (5x) and for credit coming back only every quarter window;
# - a frame carries at most CHUNK bytes, so a small reply waits at most one chunk per busy stream;
# - WATER bounds what the agent itself queues towards the pipe (beyond the kernel's 64 KiB pipe buffer): every
#   byte queued ahead of a small reply delays it by bytes / link rate.
WINDOW = 4 << 20
CHUNK = 32 << 10
WATER = 64 << 10
SEND_HIGH = 256 << 10  # a stream's own send buffer before its writer is told to wait (drain)
READ_SIZE = 256 << 10
COMPRESS_MIN = 512  # smaller chunks never pay for the probe
COMPRESS_BELOW = 40e6  # bytes/s: compress only while the pipe drains slower than this (zlib level 1: ~150 MB/s)
BACKLOG_MEMORY = 0.5  # seconds a backlog of the pipe counts as "the pipe is the bottleneck"
SKIP_FIRST = 256 << 10  # after a chunk that did not compress, skip this many bytes before trying again...
SKIP_MAX = 16 << 20  # ...doubling up to this
RESOLVE_TTL = 10.0  # seconds a far-side name lookup is reused


# The protocol's own errors are defined here, not in ecflow_remote.errors: this code also runs at the far side,
# which has nothing but this program (bootstrap drops its imports of ecflow_remote). On the laptop they sit in the
# error tree, under AgentError (a caller catching NetworkError catches them); at the far side under Exception. The
# session turns those that leave it into AgentError & co.
if TYPE_CHECKING or __name__.startswith("ecflow_remote."):
    from ecflow_remote.errors import AgentError as _Base
else:
    _Base = Exception


class MuxError(_Base):
    """Base of the protocol's errors."""


class FrameError(MuxError):
    """The byte pipe carried something that is not a frame of this protocol."""


class SessionDied(MuxError):
    """The pipe (ssh, or the agent at the far end) is gone; every stream on it is gone too."""


class StreamReset(MuxError):
    """The stream was reset (by either end), with the reason."""


class OpenFailed(MuxError):
    """The far end could not connect to the target: code is refused, unknown-host, timeout, unreachable, error."""

    def __init__(self, code: str, message: str) -> None:
        MuxError.__init__(self, message)
        self.code = code
        self.message = message


def frame(kind: int, sid: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, sid, len(payload)) + payload


def should_compress(
    mode: str, now: float, last_backlog: float, drain_rate: float, below: float, slow_link: bool = False
) -> bool:
    """Compress only where it pays: always/never when told, else on a slow link (a home link: zlib level 1 is
    faster than any), or while the pipe is seen draining slower than the compressor."""
    if mode == "always":
        return True
    if mode != "auto":
        return False
    return slow_link or (now - last_backlog < BACKLOG_MEMORY and drain_rate < below)


def compresses(sample: bytes) -> bool:
    """A cheap probe on the first 4 KiB: worth compressing when it shrinks by 15 % or more."""
    sample = sample[:4096]
    return len(zlib.compress(sample, 1)) < 0.85 * len(sample)
