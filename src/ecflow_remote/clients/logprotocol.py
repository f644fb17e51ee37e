"""The log server's line protocol (ecflow_logsvr.pl): requests, and the replies of getf, delta, list, version."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from ecflow_remote.errors import (
    LogFileUnavailable,
    LogReplyTooLarge,
    LogServerError,
    StreamTimeout,
    TruncatedOutput,
    size_words,
)

# The log server's checksum covers the first KiB only (sub meta in ecflow_logsvr.pl).
CHECKSUM_SPAN = 1024
# The most the clients keep in memory from one reply (a file read whole, a delta, a list). The protocol ends a reply
# by closing, and a listed size is only a claim, so both are bounded by this. A file copied to disk (copy_to) may
# grow by this much beyond its listed size while it is copied. Read at each request, so it can be changed here.
MAX_REPLY = 256 * 1024 * 1024


def reply_too_large(where: str, line: str, size: int | None = None) -> LogReplyTooLarge:
    """The error for a reply over the limit; `size` when a listed size already says so, before any transfer."""
    verb = line.split(" ", 1)[0]
    if size is not None:
        return LogReplyTooLarge(
            f"log server {where} lists {line.split(' ', 1)[-1]} at {size} bytes, more than the {size_words(MAX_REPLY)} "
            "kept in memory (ecflow_remote.clients.logprotocol.MAX_REPLY): stream it instead (`ecflow-remote output` "
            "without --follow)"
        )
    return LogReplyTooLarge(
        f"log server {where} sent more than the {size_words(MAX_REPLY)} allowed for {verb!r} and was cut off: it is "
        "not an ecFlow log server, or the file keeps growing; nothing partial was kept"
    )


@dataclass(frozen=True)
class ListEntry:
    """One line of `list`: stat fields of a file next to the one asked about."""

    mode: int
    uid: int
    gid: int
    size: int
    atime: int
    mtime: int
    ctime: int
    path: str


@dataclass(frozen=True)
class LogFile:
    """A whole file fetched with `getf`."""

    path: str
    mtime: int | None
    checksum: str
    data: bytes = field(repr=False)
    expected_size: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Delta:
    """The answer to `delta`: nothing new, the bytes after `pos` (append), or the whole file again."""

    unchanged: bool
    append: bool
    mtime: int | None
    checksum: str
    data: bytes = field(repr=False)


def _check_path(path: str) -> None:
    # The request is one line, so a newline would end it early and send a different path.
    if not path or "\n" in path or "\r" in path:
        raise ValueError(f"not a usable log server path: {path!r}")


def _parse_int(text: str) -> int | None:
    return int(text) if text.strip().lstrip("-").isdigit() else None


def parse_header(data: bytes) -> tuple[str, int | None, str, int]:
    """Split a `getf`/`delta` reply header `<flag>:<mtime>:<checksum>:`; returns (flag, mtime, checksum, offset).

    The checksum is a 40-digit sha1, `x` when the server lacks Digest::SHA1, or empty when stat failed.
    """
    parts = data.split(b":", 3)
    if len(parts) < 4 or parts[0] not in (b"0", b"1"):
        raise LogServerError(f"unexpected reply header {data[:60]!r}: not an ecFlow log server?")
    flag, mtime, checksum = (p.decode("ascii", errors="replace") for p in parts[:3])
    offset = len(parts[0]) + len(parts[1]) + len(parts[2]) + 3
    return flag, _parse_int(mtime), checksum, offset


def parse_list(data: bytes, where: str = "") -> list[ListEntry]:
    """Lines `mode uid gid size atime mtime ctime path`; a last line without its newline means truncation."""
    if data and not data.endswith(b"\n"):
        raise TruncatedOutput(f"the file list from log server {where} was cut off mid-line; try again")
    entries: list[ListEntry] = []
    for line in data.decode("utf-8", errors="surrogateescape").splitlines():
        fields = line.split(" ", 7)
        if len(fields) != 8 or not all(f.isdigit() for f in fields[:7]):
            raise LogServerError(f"unexpected list line from log server {where}: {line[:120]!r}")
        mode, uid, gid, size, atime, mtime, ctime = (int(f) for f in fields[:7])
        entries.append(ListEntry(mode, uid, gid, size, atime, mtime, ctime, fields[7]))
    return entries


def checksum_of(data: bytes) -> str:
    """The log server's checksum: sha1 hex of the first KiB."""
    return hashlib.sha1(data[:CHECKSUM_SPAN]).hexdigest()


def _verb(line: str) -> str:
    return line.split(" ", 1)[0]


def _timed_out(where: str, read_timeout: float, line: str) -> StreamTimeout:
    return StreamTimeout(
        f"log server {where} went quiet for {read_timeout:g}s during {_verb(line)!r}; the tunnel may be stuck "
        "(try again)"
    )


def _dropped(where: str, line: str, e: ConnectionError) -> TruncatedOutput:
    return TruncatedOutput(
        f"log server {where} dropped the connection ({e.strerror or e}) during {_verb(line)!r}; nothing partial "
        "was kept, try again"
    )


def _unavailable_error(where: str, path: str, command: str, dir_visible: bool) -> LogFileUnavailable:
    directory = _directory_of(path)
    if dir_visible:
        why = "the file does not exist (its directory is served) or is not readable by the log server"
    else:
        why = (
            f"the directory {directory} does not exist there, or it is outside the log server's LOGPATH "
            "(ask which directories it serves, or read the file through its ecFlow server)"
        )
    return LogFileUnavailable(f"log server {where} sent nothing for {command} {path}: {why}")


def _directory_of(path: str) -> str:
    return os.path.dirname(path.rstrip("/")) + "/"


def _stat_in(entries: list[ListEntry], path: str) -> ListEntry | None:
    base = os.path.basename(path)
    for entry in entries:
        # LOGMAP may rewrite the directory part, so match on the file name.
        if os.path.basename(entry.path) == base:
            return entry
    return None


def _delta_request(pos: int, mtime: int, checksum: str, path: str) -> str:
    _check_path(path)
    if " " in checksum or not checksum:
        raise ValueError(f"checksum must be one word (a sha1 or 'x'), not {checksum!r}")
    return f"delta {int(pos)} {int(mtime)} {checksum} {path}"


def _delta_reply(reply: bytes, mtime: int, checksum: str) -> Delta:
    if reply == b"1":
        return Delta(unchanged=True, append=False, mtime=mtime, checksum=checksum, data=b"")
    flag, new_mtime, new_checksum, offset = parse_header(reply)
    return Delta(unchanged=False, append=flag == "1", mtime=new_mtime, checksum=new_checksum, data=reply[offset:])


def _version_reply(reply: bytes, where: str) -> str:
    if not reply:
        raise LogServerError(f"{where} closed without answering 'version': is it an ecFlow log server?")
    return reply.decode("ascii", errors="replace").strip()
