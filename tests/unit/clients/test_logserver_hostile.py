"""Both log-server clients against hostile or broken servers on 127.0.0.1: listed sizes are claims, replies that
end only by closing are capped, bad lines are clear errors, and a silent server is a timeout, never a hang."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.clients.logserver_fakes import CONTENT, GETF_HEADER, PATH, honest, list_line
from tests.unit.samples import Serve

from ecflow_remote.clients import logprotocol
from ecflow_remote.clients.logserver import AsyncLogServerClient, LogServerClient
from ecflow_remote.errors import EcflowRemoteError, LogReplyTooLarge, LogServerError, StreamTimeout, TruncatedOutput

# The cap the endless-stream cases run with, and how much such a server sends before it gives up (so the old,
# uncapped client ended too, with the wrong answer instead of an error).
SMALL_CAP = 1024 * 1024
ENDLESS = 8 * SMALL_CAP

Answer = Callable[[str], bytes | None]


def _flood(start: bytes = b"") -> bytes:
    return start + b"x" * ENDLESS


def _listing(size: int) -> Answer:
    """honest, but the file is listed at `size` bytes."""
    return lambda line: list_line(size) if line == f"list {PATH}" else honest(line)


def _answering(verb: str, reply: bytes | None) -> Answer:
    """honest, but requests starting with `verb` get `reply` (None: no answer at all, the connection kept open)."""
    return lambda line: reply if line.startswith(verb) else honest(line)


def _call(client: Any, operation: str) -> object:
    if operation == "version":
        return client.version()
    if operation == "list":
        return client.list(PATH)
    if operation == "read":
        return client.read(PATH)
    if operation == "copy_to":
        return client.copy_to(PATH, io.BytesIO())
    if operation == "delta":
        return client.delta(100, 1700000001, "x", PATH)
    raise AssertionError(operation)


def _case(operation: str, answer: Answer, error: type[Exception], words: str, name: str, small: bool = False) -> Any:
    """One row: the call, the server's answer, the error and its words; `small`: run with the cap at SMALL_CAP."""
    return pytest.param(operation, answer, error, words, small, id=name)


TooBig = LogReplyTooLarge
HOSTILE = [
    _case("read", _listing(10**30), TooBig, r"lists /out/lab/t1.1 at 10{30} bytes", "huge-size"),
    _case("read", _listing(300 << 20), TooBig, "more than the 256 MiB kept in memory", "over-cap"),
    _case("version", _answering("version", _flood()), TooBig, "for 'version'", "endless-version", small=True),
    _case("list", _answering("list", _flood(list_line(1))), TooBig, "for 'list'", "endless-list", small=True),
    _case("read", _answering("getf", _flood(GETF_HEADER)), TooBig, "for 'getf'", "endless-getf", small=True),
    _case("copy_to", _answering("getf", _flood(GETF_HEADER)), TooBig, "for 'getf'", "endless-copy", small=True),
    _case("delta", _answering("delta", _flood(b"1:1:x:")), TooBig, "for 'delta'", "endless-delta", small=True),
    _case("list", _answering("list", b"33188 0 0 big 1 2 3 /x\n"), LogServerError, "unexpected list", "bad-list"),
    _case("list", _answering("list", b"\xff\xfe" * 100 + b"\n"), LogServerError, "unexpected list", "binary-list"),
    _case("read", _answering("getf", b"<html>" * 100), LogServerError, "not an ecFlow log server", "bad-header"),
    _case("delta", _answering("delta", b"2:x"), LogServerError, "not an ecFlow log server", "bad-delta"),
    _case("version", _answering("version", None), StreamTimeout, "quiet for 1s during 'version'", "silent"),
    _case("read", _answering("getf", None), StreamTimeout, "quiet for 1s during 'getf'", "silent-getf"),
]


def _server(serve: Serve, answer: Answer, stop: threading.Event) -> int:
    def on_connection(conn: socket.socket) -> None:
        with conn.makefile("rb") as f:
            line = f.readline().decode().rstrip("\n")
        reply = answer(line)
        if reply is None:
            stop.wait(30)  # accepted and read the request, never answers
            return
        try:
            conn.sendall(reply)
        except OSError:
            return  # the client stopped reading and went away: what it should do

    return serve(on_connection)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize(("operation", "answer", "error", "words", "small_cap"), HOSTILE)
def test_hostile_log_server_gives_a_clear_error(
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    operation: str,
    answer: Answer,
    error: type[Exception],
    words: str,
    small_cap: bool,
) -> None:
    if small_cap:
        monkeypatch.setattr(logprotocol, "MAX_REPLY", SMALL_CAP)
    stop = threading.Event()
    port = _server(serve, answer, stop)
    try:
        with pytest.raises(error, match=words) as info:
            if api == "sync":
                _call(LogServerClient("127.0.0.1", port, connect_timeout=2, read_timeout=1), operation)
            else:
                client = AsyncLogServerClient("127.0.0.1", port, connect_timeout=2, read_timeout=1)
                asyncio.run(_call(client, operation))  # type: ignore[arg-type]
    finally:
        stop.set()
    assert isinstance(info.value, EcflowRemoteError)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["sync-whole", "sync-progress", "async"])
def test_a_listed_size_is_not_an_allocation(serve: Serve, path: str) -> None:
    """A file listed at 200 MiB (under the cap) of which 10 KiB come costs about that, not 200 MiB."""
    stop = threading.Event()
    port = _server(serve, _listing(200 << 20), stop)
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedOutput, match=f"got {len(CONTENT)} of {200 << 20} bytes"):
            if path == "async":
                asyncio.run(AsyncLogServerClient("127.0.0.1", port, read_timeout=5).read(PATH))
            else:
                progress = None if path == "sync-whole" else (lambda done, total: None)
                LogServerClient("127.0.0.1", port, read_timeout=5).read(PATH, progress=progress)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stop.set()
    assert peak < 16 * 1024 * 1024


@pytest.mark.timeout(60)
def test_a_file_that_grows_a_little_while_copied_is_fine(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_to allows MAX_REPLY of growth beyond the listed size: a running job's output keeps coming."""
    monkeypatch.setattr(logprotocol, "MAX_REPLY", SMALL_CAP)
    grown = CONTENT + b"y" * (SMALL_CAP // 2)
    stop = threading.Event()
    port = _server(serve, _answering("getf", GETF_HEADER + grown), stop)
    out = io.BytesIO()
    LogServerClient("127.0.0.1", port, read_timeout=5).copy_to(PATH, out)
    assert out.getvalue() == grown
    out = io.BytesIO()
    asyncio.run(AsyncLogServerClient("127.0.0.1", port, read_timeout=5).copy_to(PATH, out))
    assert out.getvalue() == grown


@pytest.mark.timeout(60)
def test_big_files_still_arrive_whole(serve: Serve) -> None:
    """The doubling reads give back exactly the file, across many reads, on both sync paths."""
    big = bytes(range(256)) * (5 * 1024 * 1024 // 256 + 3)
    answer: Answer = lambda line: (  # noqa: E731
        list_line(len(big)) if line.startswith("list") else GETF_HEADER + big if line.startswith("getf") else b""
    )
    stop = threading.Event()
    port = _server(serve, answer, stop)
    client = LogServerClient("127.0.0.1", port, read_timeout=10)
    assert client.read(PATH).data == big
    assert client.read(PATH, progress=lambda done, total: None).data == big
    assert asyncio.run(AsyncLogServerClient("127.0.0.1", port, read_timeout=10).read(PATH)).data == big
