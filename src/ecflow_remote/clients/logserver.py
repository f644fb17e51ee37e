"""Client for ecFlow's log server (ecflow_logsvr.pl): fetch job output, list, delta, with truncation detection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO, Unpack

from ecflow_remote.clients import logprotocol
from ecflow_remote.clients.connect import Destination, DestinationOptions, close_stream
from ecflow_remote.clients.logprotocol import (
    CHECKSUM_SPAN,
    Delta,
    ListEntry,
    LogFile,
    _check_path,
    _delta_reply,
    _delta_request,
    _directory_of,
    _dropped,
    _stat_in,
    _timed_out,
    _unavailable_error,
    _version_reply,
    checksum_of,
    parse_header,
    parse_list,
    reply_too_large,
)
from ecflow_remote.errors import LogFileUnavailable, LogServerError, TruncatedOutput
from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT

CHUNK = 64 * 1024
# The sync client reads with recv_into straight into its buffer, up to this much at a time when streaming.
SYNC_CHUNK = 1024 * 1024
# Room for a getf/delta header (`0:<mtime>:<sha1>:`) on top of the listed size, so a file read into memory
# usually needs no second buffer.
_HEADER_ROOM = 256

Progress = Callable[[int, "int | None"], None]


class _Transfer:
    """One get/getf reply as it arrives, for both clients: splits off the header, counts the bytes, keeps the
    first KiB for the checksum, and after the close says whether the file came whole."""

    def __init__(
        self,
        where: str,
        path: str,
        command: str,
        total: int | None,
        sink: Callable[[bytes], object] | None,
        progress: Progress | None,
    ) -> None:
        self.where = where
        self.path = path
        self.command = command
        self.total = total
        self.sink = sink
        self.progress = progress
        self.header = bytearray()
        self.header_done = command == "get"
        # Where the file's bytes start in the reply (after the header).
        self.data_start = 0
        self.first_kib = bytearray()
        self.received = 0
        self.mtime: int | None = None
        self.checksum = ""

    def feed(self, chunk: bytes | memoryview) -> None:
        if self.header_done:
            self._data(chunk)
            return
        view = memoryview(chunk)
        # A real header is well under _HEADER_ROOM bytes; only that much is looked at (and copied).
        before = len(self.header)
        self.header.extend(view[: _HEADER_ROOM - before])
        head = bytes(self.header)
        if head.count(b":") < 3 and len(head) < _HEADER_ROOM:
            return
        _, self.mtime, self.checksum, offset = parse_header(head)
        self.header_done = True
        self.data_start = offset
        # The third colon came with this chunk, so the file's first bytes are in it.
        self._data(view[offset - before :])

    def _data(self, chunk: bytes | memoryview) -> None:
        if len(self.first_kib) < CHECKSUM_SPAN:
            self.first_kib.extend(chunk[: CHECKSUM_SPAN - len(self.first_kib)])
        self.received += len(chunk)
        if self.sink is not None:
            # Sinks (a caller's file object among them) get bytes they may keep, never a view of a reused buffer.
            self.sink(chunk if isinstance(chunk, bytes) else bytes(chunk))
        if self.progress is not None:
            self.progress(self.received, self.total)

    def finish(self) -> bool:
        """After the server closed: False if it sent nothing (the file is unavailable); raises TruncatedOutput
        unless every listed byte came and the first KiB matches the server's checksum."""
        if not self.header_done:
            if not self.header:
                return False
            raise TruncatedOutput(f"log server {self.where} closed inside the reply header for {self.path}; try again")
        if self.command == "get" and self.received == 0 and self.total is None:
            # `get` of a missing file and of an empty one look the same; the list tells them apart.
            return False
        if self.total is not None and self.received < self.total:
            raise TruncatedOutput(
                f"{self.path} from log server {self.where}: got {self.received} of {self.total} bytes before the "
                "connection closed; nothing partial was kept, try again"
            )
        if (
            len(self.checksum) == 40
            and checksum_of(bytes(self.first_kib)) != self.checksum
            and self.received >= CHECKSUM_SPAN
        ):
            raise TruncatedOutput(
                f"{self.path} from log server {self.where}: the first KiB does not match the server's checksum; "
                "the file changed or the transfer was damaged, try again"
            )
        return True

    def result(self, data: bytes) -> LogFile:
        return LogFile(path=self.path, mtime=self.mtime, checksum=self.checksum, data=data, expected_size=self.total)


class AsyncLogServerClient(Destination):
    """One request per connection, as the log server serves them (it forks, answers and closes)."""

    def __init__(self, host: str, port: int = DEFAULT_LOGSERVER_PORT, **options: Unpack[DestinationOptions]) -> None:
        # read_timeout: idle time allowed between two chunks, not for the whole transfer: big files may take long.
        super().__init__(host, port, **options)

    def __repr__(self) -> str:
        return f"AsyncLogServerClient({self.where})"

    async def _request(
        self,
        line: str,
        on_chunk: Callable[[bytes], None] | None = None,
        limit: int | None = None,
    ) -> bytes:
        """Send one command line and read until the server closes; with on_chunk, chunks go there instead. More
        than `limit` bytes (default logprotocol.MAX_REPLY) is an error: the reply ends only when the server
        closes."""
        limit = logprotocol.MAX_REPLY if limit is None else limit
        received = 0
        reader, writer = await self.connect_stream()
        chunks: list[bytes] = []
        try:
            writer.write(_encode_line(line))
            while True:
                try:
                    async with asyncio.timeout(self.read_timeout):
                        await writer.drain()
                        chunk = await reader.read(CHUNK)
                except TimeoutError:
                    raise _timed_out(self.where, self.read_timeout, line) from None
                except ConnectionError as e:
                    raise _dropped(self.where, line, e) from e
                if not chunk:
                    break
                received += len(chunk)
                if received > limit:
                    raise reply_too_large(self.where, line)
                if on_chunk is None:
                    chunks.append(chunk)
                else:
                    on_chunk(chunk)
        finally:
            await close_stream(writer)
        return b"".join(chunks)

    async def version(self) -> str:
        """The protocol version the server speaks (`2` for ecflow_logsvr.pl)."""
        return _version_reply(await self._request("version"), self.where)

    async def list(self, path: str) -> list[ListEntry]:
        """Files in path's directory whose names start with path's base name up to its first dot, plus a dot.

        `list /out/s/t.1` lists `t.1`, `t.2`, `t.job1`, … An empty list is also what a missing directory or a
        path outside LOGPATH gives: the protocol cannot tell these apart.
        """
        _check_path(path)
        return parse_list(await self._request(f"list {path}"), self.where)

    async def stat(self, path: str) -> ListEntry | None:
        """The list entry of exactly this file, or None if the server does not show it."""
        return _stat_in(await self.list(path), path)

    async def get(self, path: str) -> bytes:
        """The whole file (plain `get`), checked against its listed size."""
        return (await self.read(path, command="get")).data

    async def getf(self, path: str) -> tuple[int | None, bytes]:
        """(mtime, bytes) of the whole file, via `getf`."""
        result = await self.read(path)
        return result.mtime, result.data

    async def delta(self, pos: int, mtime: int, checksum: str, path: str) -> Delta:
        """What changed since a previous fetch of `pos` bytes with that mtime and checksum (`x` if unknown)."""
        reply = await self._request(_delta_request(pos, mtime, checksum, path))
        if not reply:
            raise await self._unavailable(path, "delta")
        return _delta_reply(reply, mtime, checksum)

    async def read(self, path: str, *, progress: Progress | None = None, command: str = "getf") -> LogFile:
        """Fetch a whole file into memory, verified; `progress(bytes_so_far, total_or_None)` after each chunk."""
        buffer = bytearray()
        transfer = await self._stream(path, buffer.extend, progress, command, to_memory=True)
        return transfer.result(bytes(buffer))

    async def copy_to(self, path: str, out: BinaryIO, *, progress: Progress | None = None) -> LogFile:
        """Stream a large file into `out` (chunks written as they arrive); the returned LogFile has no data.

        On TruncatedOutput `out` holds a partial copy: the caller should discard it.
        """
        return (await self._stream(path, out.write, progress, "getf", to_memory=False)).result(b"")

    async def _stream(
        self,
        path: str,
        sink: Callable[[bytes], object],
        progress: Progress | None,
        command: str,
        *,
        to_memory: bool,
    ) -> _Transfer:
        _check_path(path)
        # The protocol has no length field and ends by closing, so the size comes from `list` beforehand.
        listed = await self.stat(path)
        total = listed.size if listed is not None else None
        line = f"{command} {path}"
        transfer = _Transfer(self.where, path, command, total, sink, progress)
        await self._request(line, transfer.feed, _reply_limit(self.where, line, total, to_memory))
        if not transfer.finish():
            raise await self._unavailable(path, command)
        return transfer

    async def _unavailable(self, path: str, command: str) -> LogFileUnavailable:
        # The server dies silently on errors; probing the directory says which error it probably was.
        try:
            dir_visible = bool(await self.list(_directory_of(path)))
        except LogServerError:
            dir_visible = False
        return _unavailable_error(self.where, path, command, dir_visible)


def _reply_limit(where: str, line: str, listed: int | None, to_memory: bool) -> int:
    """How many bytes a file transfer may bring: MAX_REPLY (and its header) when it is kept in memory, refused at
    once when the listed size is already more; the listed size plus MAX_REPLY of growth when it is copied out."""
    room = logprotocol.MAX_REPLY + _HEADER_ROOM
    if not to_memory:
        return (listed or 0) + room
    if listed is not None and listed > logprotocol.MAX_REPLY:
        raise reply_too_large(where, line, listed)
    return room


# recv(n, MSG_WAITALL) with a receive timeout behaves as described in _receive_whole on Linux and macOS.
_CAN_WAIT_ALL = hasattr(socket, "MSG_WAITALL") and hasattr(socket, "SO_RCVTIMEO")


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    # A zero timeval means no timeout at all: never round a tiny timeout down to that.
    return struct.pack("@ll", whole, max(int((seconds - whole) * 1e6), 0 if whole else 1))


def _encode_line(line: str) -> bytes:
    return line.encode("utf-8", errors="surrogateescape") + b"\n"


class LogServerClient:
    """The same client for synchronous code, over plain blocking sockets: no event loop, and files are read with
    recv_into straight into one buffer sized from the listed size."""

    def __init__(self, host: str, port: int = DEFAULT_LOGSERVER_PORT, **options: Unpack[DestinationOptions]) -> None:
        """Takes what AsyncLogServerClient takes."""
        self._async = AsyncLogServerClient(host, port, **options)

    def __repr__(self) -> str:
        return f"LogServerClient({self._async.where})"

    @property
    def host(self) -> str:
        return self._async.host

    @property
    def port(self) -> int:
        return self._async.port

    def _connect(self, line: str) -> socket.socket:
        # Idle time allowed between two reads, as in the async client.
        sock = self._async.connect_socket()
        try:
            sock.sendall(_encode_line(line))
        except BaseException:
            sock.close()
            raise
        return sock

    @contextlib.contextmanager
    def _reading(self, line: str, sock: socket.socket | None = None) -> Iterator[socket.socket]:
        """The connection for one request (`sock`, or a new one with `line` sent), closed at the end; silence
        (a timeout, or EAGAIN under SO_RCVTIMEO) raises StreamTimeout, a dropped connection TruncatedOutput."""
        c = self._async
        try:
            with sock if sock is not None else self._connect(line) as conn:
                yield conn
        except (TimeoutError, BlockingIOError):
            raise _timed_out(c.where, c.read_timeout, line) from None
        except ConnectionError as e:
            raise _dropped(c.where, line, e) from e

    def _receive(
        self,
        line: str,
        *,
        size: int = CHUNK,
        keep: bool = True,
        feed: Callable[[memoryview], None] | None = None,
        sock: socket.socket | None = None,
        limit: int | None = None,
    ) -> tuple[bytearray, int]:
        """Send one command line and read until the server closes, with recv_into into one buffer of `size`
        bytes: grown as needed if `keep` (returns it and the byte count), reused for each read if not. `feed`
        sees each new piece. `sock` is an already connected socket with the line sent. More than `limit` bytes in
        all (default logprotocol.MAX_REPLY) is an error."""
        limit = logprotocol.MAX_REPLY if limit is None else limit
        received = 0
        buffer = bytearray(size)
        view = memoryview(buffer)
        end = 0
        try:
            with self._reading(line, sock) as conn:
                while True:
                    if end == len(buffer):
                        if keep:
                            view.release()
                            buffer.extend(bytes(max(len(buffer), SYNC_CHUNK)))
                            view = memoryview(buffer)
                        else:
                            end = 0
                    n = conn.recv_into(view[end:])
                    if not n:
                        break
                    received += n
                    if received > limit:
                        raise reply_too_large(self._async.where, line)
                    if feed is not None:
                        feed(view[end : end + n])
                    end += n
        finally:
            view.release()
        return buffer, end

    def _request(self, line: str) -> bytes:
        buffer, end = self._receive(line)
        del buffer[end:]
        return bytes(buffer)

    def version(self) -> str:
        return _version_reply(self._request("version"), self._async.where)

    def list(self, path: str) -> list[ListEntry]:
        _check_path(path)
        return parse_list(self._request(f"list {path}"), self._async.where)

    def stat(self, path: str) -> ListEntry | None:
        return _stat_in(self.list(path), path)

    def get(self, path: str) -> bytes:
        return self._read(path, None, "get").data

    def getf(self, path: str) -> tuple[int | None, bytes]:
        result = self._read(path, None, "getf")
        return result.mtime, result.data

    def delta(self, pos: int, mtime: int, checksum: str, path: str) -> Delta:
        reply = self._request(_delta_request(pos, mtime, checksum, path))
        if not reply:
            raise self._unavailable(path, "delta")
        return _delta_reply(reply, mtime, checksum)

    def read(self, path: str, *, progress: Progress | None = None) -> LogFile:
        return self._read(path, progress, "getf")

    def copy_to(self, path: str, out: BinaryIO, *, progress: Progress | None = None) -> LogFile:
        _check_path(path)
        listed = self.stat(path)
        total = listed.size if listed is not None else None
        line = f"getf {path}"
        transfer = _Transfer(self._async.where, path, "getf", total, out.write, progress)
        limit = _reply_limit(self._async.where, line, total, to_memory=False)
        self._receive(line, size=SYNC_CHUNK, keep=False, feed=transfer.feed, limit=limit)
        if not transfer.finish():
            raise self._unavailable(path, "getf")
        return transfer.result(b"")

    def _read(self, path: str, progress: Progress | None, command: str) -> LogFile:
        _check_path(path)
        listed = self.stat(path)
        total = listed.size if listed is not None else None
        transfer = _Transfer(self._async.where, path, command, total, None, progress)
        line = f"{command} {path}"
        limit = _reply_limit(self._async.where, line, total, to_memory=True)
        if total and progress is None and _CAN_WAIT_ALL:
            data = self._receive_whole(line, transfer, total, limit)
        else:
            # The bytes land in the buffer where recv_into put them; the transfer only checks them. The buffer
            # starts no bigger than a chunk, whatever the listed size claims, and grows as bytes come.
            first = min(total or 0, SYNC_CHUNK) + _HEADER_ROOM
            buffer, end = self._receive(line, size=first, feed=transfer.feed, limit=limit)
            with memoryview(buffer) as view:
                data = bytes(view[transfer.data_start : end])
        if not transfer.finish():
            raise self._unavailable(path, command)
        return transfer.result(data)

    def _receive_whole(self, line: str, transfer: _Transfer, total: int, limit: int) -> bytes:
        """The file's bytes when the listed size is known: the header is taken off first, then recv(n,
        MSG_WAITALL) has the kernel copy the file into bytes objects with no buffer to clear beforehand. The
        listed size is only a claim, so the reads double (each as big as what came so far): never more memory
        than twice what arrived, and a file up to SYNC_CHUNK still comes in one piece with no copy afterwards."""
        parts: list[bytes] = []
        got = 0
        with self._reading(line) as sock:
            # Blocking reads bounded by SO_RCVTIMEO: a read that got data returns it when the time is up, one
            # that got nothing fails with EAGAIN, so a transfer is given up after at most two read_timeouts of
            # silence.
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(self._async.read_timeout))
            while not transfer.header_done:
                # Consume exactly the header, so that the file starts at the first byte of the next read.
                peek = sock.recv(_HEADER_ROOM, socket.MSG_PEEK)
                if not peek:
                    return b""  # closed before or inside the header: transfer.finish() says which
                need = 3 - transfer.header.count(b":")
                cut = -1
                for _ in range(need):
                    cut = peek.find(b":", cut + 1)
                    if cut < 0:
                        break
                transfer.feed(sock.recv(cut + 1 if cut >= 0 else len(peek)))
            while True:
                # The listed bytes in doubling reads; anything more (a file that grew, or the rest after a slow
                # patch cut a read short) until the server closes.
                if got < total:
                    part = sock.recv(min(total - got, max(SYNC_CHUNK, got)), socket.MSG_WAITALL)
                else:
                    part = sock.recv(SYNC_CHUNK)
                if not part:
                    break
                got += len(part)
                if got + len(transfer.header) > limit:
                    raise reply_too_large(self._async.where, line)
                parts.append(part)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        transfer.feed(data)
        return data

    def _unavailable(self, path: str, command: str) -> LogFileUnavailable:
        try:
            dir_visible = bool(self.list(_directory_of(path)))
        except LogServerError:
            dir_visible = False
        return _unavailable_error(self._async.where, path, command, dir_visible)
