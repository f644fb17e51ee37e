"""Client for ecFlow's log server (ecflow_logsvr.pl): fetch job output, list, delta, with truncation detection."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.transport import StreamTimeout, close_stream, describe_target, open_stream

DEFAULT_PORT = 9316
CHUNK = 64 * 1024
# The log server's checksum covers the first KiB only (sub meta in ecflow_logsvr.pl).
CHECKSUM_SPAN = 1024

Progress = Callable[[int, "int | None"], None]


class LogServerError(EcflowRemoteError):
    """The log server could not give what was asked."""


class LogFileUnavailable(LogServerError):
    """The log server sent nothing: the file is missing, unreadable, or outside its LOGPATH."""


class TruncatedOutput(LogServerError):
    """The connection closed before the whole file arrived; a partial file is never returned."""


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


class AsyncLogServerClient:
    """One request per connection, as the log server serves them (it forks, answers and closes)."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        proxy: tuple[str, int] | None = None,
        proxy_auth: tuple[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.proxy = proxy
        self.proxy_auth = proxy_auth
        self.connect_timeout = connect_timeout
        # Idle time allowed between two chunks, not for the whole transfer: big files may take long.
        self.read_timeout = read_timeout

    @property
    def where(self) -> str:
        return describe_target(self.host, self.port, self.proxy)

    def __repr__(self) -> str:
        return f"AsyncLogServerClient({self.where})"

    async def _request(
        self,
        line: str,
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """Send one command line and read until the server closes; with on_chunk, chunks go there instead."""
        reader, writer = await open_stream(
            self.host,
            self.port,
            proxy=self.proxy,
            proxy_auth=self.proxy_auth,
            connect_timeout=self.connect_timeout,
        )
        chunks: list[bytes] = []
        try:
            writer.write(line.encode("utf-8", errors="surrogateescape") + b"\n")
            while True:
                try:
                    async with asyncio.timeout(self.read_timeout):
                        await writer.drain()
                        chunk = await reader.read(CHUNK)
                except TimeoutError:
                    raise StreamTimeout(
                        f"log server {self.where} went quiet for {self.read_timeout:g}s during "
                        f"{line.split(' ', 1)[0]!r}; the tunnel may be stuck (try again)"
                    ) from None
                except ConnectionError as e:
                    raise TruncatedOutput(
                        f"log server {self.where} dropped the connection ({e.strerror or e}) during "
                        f"{line.split(' ', 1)[0]!r}; nothing partial was kept, try again"
                    ) from e
                if not chunk:
                    break
                if on_chunk is None:
                    chunks.append(chunk)
                else:
                    on_chunk(chunk)
        finally:
            await close_stream(writer)
        return b"".join(chunks)

    async def version(self) -> str:
        """The protocol version the server speaks (`2` for ecflow_logsvr.pl)."""
        reply = await self._request("version")
        if not reply:
            raise LogServerError(f"{self.where} closed without answering 'version': is it an ecFlow log server?")
        return reply.decode("ascii", errors="replace").strip()

    async def list(self, path: str) -> list[ListEntry]:
        """Files in path's directory whose names start with path's base name up to its first dot, plus a dot.

        `list /out/s/t.1` lists `t.1`, `t.2`, `t.job1`, … An empty list is also what a missing directory or a
        path outside LOGPATH gives: the protocol cannot tell these apart.
        """
        _check_path(path)
        return parse_list(await self._request(f"list {path}"), self.where)

    async def stat(self, path: str) -> ListEntry | None:
        """The list entry of exactly this file, or None if the server does not show it."""
        base = os.path.basename(path)
        for entry in await self.list(path):
            # LOGMAP may rewrite the directory part, so match on the file name.
            if os.path.basename(entry.path) == base:
                return entry
        return None

    async def get(self, path: str) -> bytes:
        """The whole file (plain `get`), checked against its listed size."""
        return (await self.read(path, command="get")).data

    async def getf(self, path: str) -> tuple[int | None, bytes]:
        """(mtime, bytes) of the whole file, via `getf`."""
        result = await self.read(path)
        return result.mtime, result.data

    async def delta(self, pos: int, mtime: int, checksum: str, path: str) -> Delta:
        """What changed since a previous fetch of `pos` bytes with that mtime and checksum (`x` if unknown)."""
        _check_path(path)
        if " " in checksum or not checksum:
            raise ValueError(f"checksum must be one word (a sha1 or 'x'), not {checksum!r}")
        reply = await self._request(f"delta {int(pos)} {int(mtime)} {checksum} {path}")
        if not reply:
            raise await self._unavailable(path, "delta")
        if reply == b"1":
            return Delta(unchanged=True, append=False, mtime=mtime, checksum=checksum, data=b"")
        flag, new_mtime, new_checksum, offset = parse_header(reply)
        return Delta(unchanged=False, append=flag == "1", mtime=new_mtime, checksum=new_checksum, data=reply[offset:])

    async def read(self, path: str, *, progress: Progress | None = None, command: str = "getf") -> LogFile:
        """Fetch a whole file into memory, verified; `progress(bytes_so_far, total_or_None)` after each chunk."""
        buffer = bytearray()
        return await self._stream(path, buffer.extend, progress, command, buffer)

    async def copy_to(self, path: str, out: BinaryIO, *, progress: Progress | None = None) -> LogFile:
        """Stream a large file into `out` (chunks written as they arrive); the returned LogFile has no data.

        On TruncatedOutput `out` holds a partial copy: the caller should discard it.
        """
        return await self._stream(path, out.write, progress, "getf", None)

    async def _stream(
        self,
        path: str,
        sink: Callable[[bytes], object],
        progress: Progress | None,
        command: str,
        keep: bytearray | None,
    ) -> LogFile:
        _check_path(path)
        # The protocol has no length field and ends by closing, so the size comes from `list` beforehand.
        listed = await self.stat(path)
        total = listed.size if listed is not None else None
        header = bytearray()
        header_done = command == "get"
        first_kib = bytearray()
        received = 0
        meta: tuple[int | None, str] = (None, "")

        def on_chunk(chunk: bytes) -> None:
            nonlocal header_done, received, meta
            if not header_done:
                header.extend(chunk)
                if header.count(b":") < 3:
                    return
                _, mtime, checksum, offset = parse_header(bytes(header))
                meta = (mtime, checksum)
                header_done = True
                chunk = bytes(header[offset:])
            if len(first_kib) < CHECKSUM_SPAN:
                first_kib.extend(chunk[: CHECKSUM_SPAN - len(first_kib)])
            received += len(chunk)
            sink(chunk)
            if progress is not None:
                progress(received, total)

        await self._request(f"{command} {path}", on_chunk)
        if not header_done:
            if not header:
                raise await self._unavailable(path, command)
            raise TruncatedOutput(f"log server {self.where} closed inside the reply header for {path}; try again")
        if command == "get" and received == 0 and total is None:
            # `get` of a missing file and of an empty one look the same; the list tells them apart.
            raise await self._unavailable(path, command)
        mtime, checksum = meta
        if total is not None and received < total:
            raise TruncatedOutput(
                f"{path} from log server {self.where}: got {received} of {total} bytes before the connection "
                "closed; nothing partial was kept, try again"
            )
        if len(checksum) == 40 and checksum_of(bytes(first_kib)) != checksum and received >= CHECKSUM_SPAN:
            raise TruncatedOutput(
                f"{path} from log server {self.where}: the first KiB does not match the server's checksum; "
                "the file changed or the transfer was damaged, try again"
            )
        data = bytes(keep) if keep is not None else b""
        return LogFile(path=path, mtime=mtime, checksum=checksum, data=data, expected_size=total)

    async def _unavailable(self, path: str, command: str) -> LogFileUnavailable:
        # The server dies silently on errors; probing the directory says which error it probably was.
        directory = os.path.dirname(path.rstrip("/")) + "/"
        try:
            dir_visible = bool(await self.list(directory))
        except LogServerError:
            dir_visible = False
        if dir_visible:
            why = "the file does not exist (its directory is served) or is not readable by the log server"
        else:
            why = (
                f"the directory {directory} does not exist there, or it is outside the log server's LOGPATH "
                "(ask which directories it serves, or read the file through its ecFlow server)"
            )
        return LogFileUnavailable(f"log server {self.where} sent nothing for {command} {path}: {why}")


class LogServerClient:
    """The same client for synchronous code: each call runs its own event loop."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        proxy: tuple[str, int] | None = None,
        proxy_auth: tuple[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self._async = AsyncLogServerClient(
            host,
            port,
            proxy=proxy,
            proxy_auth=proxy_auth,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    def __repr__(self) -> str:
        return f"LogServerClient({self._async.where})"

    @property
    def host(self) -> str:
        return self._async.host

    @property
    def port(self) -> int:
        return self._async.port

    def version(self) -> str:
        return asyncio.run(self._async.version())

    def list(self, path: str) -> list[ListEntry]:
        return asyncio.run(self._async.list(path))

    def stat(self, path: str) -> ListEntry | None:
        return asyncio.run(self._async.stat(path))

    def get(self, path: str) -> bytes:
        return asyncio.run(self._async.get(path))

    def getf(self, path: str) -> tuple[int | None, bytes]:
        return asyncio.run(self._async.getf(path))

    def delta(self, pos: int, mtime: int, checksum: str, path: str) -> Delta:
        return asyncio.run(self._async.delta(pos, mtime, checksum, path))

    def read(self, path: str, *, progress: Progress | None = None) -> LogFile:
        return asyncio.run(self._async.read(path, progress=progress))

    def copy_to(self, path: str, out: BinaryIO, *, progress: Progress | None = None) -> LogFile:
        return asyncio.run(self._async.copy_to(path, out, progress=progress))
