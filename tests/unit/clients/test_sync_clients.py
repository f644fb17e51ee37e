"""The sync clients (EcflowClient, LogServerClient) over blocking sockets, and AsyncEcflowClient over non-blocking
ones (the loop's sock_* calls), against small fake servers on 127.0.0.1.

The sync log-server client has two paths for a file: recv_into a buffer (with progress, or size unknown) and the
fast path (one recv(total, MSG_WAITALL) after the header); both are exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from tests.unit.clients.logserver_fakes import (
    BROKEN_GETF,
    CONTENT,
    GETF_HEADER,
    PATH,
    SHA1,
    answering_getf,
    delta,
    honest,
    list_line,
)
from tests.unit.clients.logserver_fakes import with_dir as with_served_dir
from tests.unit.samples import DATA, Serve

from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient, commands, wire
from ecflow_remote.clients.logserver import LogServerClient, checksum_of
from ecflow_remote.errors import ConnectError, LogFileUnavailable, StreamTimeout, TruncatedOutput

PING_REPLY = (DATA / "reply_ping_5.9.2.bin").read_bytes()
# Bigger than listed (the file grew after `list`), and bigger than one read.
BIG = bytes(range(256)) * 20000


def read_line(conn: socket.socket) -> str:
    with conn.makefile("rb") as f:
        return f.readline().decode().rstrip("\n")


def line_server(serve: Serve, handler: Callable[[str], bytes], seen: list[str] | None = None) -> LogServerClient:
    """A log server answering each request line with `handler(line)` at once; a client for it."""

    def on_connection(conn: socket.socket) -> None:
        line = read_line(conn)
        if seen is not None:
            seen.append(line)
        conn.sendall(handler(line))

    return LogServerClient("127.0.0.1", serve(on_connection), connect_timeout=2, read_timeout=2)


def grown(line: str) -> bytes:
    """The file is listed at 1000 bytes but BIG by the time it is sent."""
    if line.startswith("list"):
        return list_line(1000)
    return f"0:1700000001:{checksum_of(BIG)}:".encode() + BIG


# --- log server ---------------------------------------------------------------------------------------------------


def test_logserver_version_get_getf_read_copy(serve: Serve) -> None:
    seen: list[str] = []
    client = line_server(serve, honest, seen)
    assert client.version() == "2"
    assert client.get(PATH) == CONTENT
    assert client.getf(PATH) == (1700000001, CONTENT)
    progress: list[tuple[int, int | None]] = []
    result = client.read(PATH, progress=lambda done, total: progress.append((done, total)))
    assert result.data == CONTENT and type(result.data) is bytes
    assert result.checksum == SHA1 and result.expected_size == len(CONTENT)
    assert progress[-1] == (len(CONTENT), len(CONTENT))
    out = io.BytesIO()
    copied = client.copy_to(PATH, out)
    assert out.getvalue() == CONTENT and copied.data == b"" and copied.checksum == SHA1
    assert client.stat(PATH) is not None and client.stat(PATH).size == len(CONTENT)  # type: ignore[union-attr]
    assert seen[:3] == ["version", f"list {PATH}", f"get {PATH}"]


@pytest.mark.parametrize(("reply", "error", "match"), BROKEN_GETF)
@pytest.mark.parametrize("how", ["getf", "read-with-progress", "copy_to"])
def test_logserver_broken_getf(serve: Serve, reply: bytes, error: type[Exception], match: str, how: str) -> None:
    client = line_server(serve, answering_getf(reply))
    fetch: dict[str, Callable[[], object]] = {
        "getf": lambda: client.getf(PATH),  # the MSG_WAITALL fast path
        "read-with-progress": lambda: client.read(PATH, progress=lambda done, total: None),
        "copy_to": lambda: client.copy_to(PATH, io.BytesIO()),
    }
    with pytest.raises(error, match=match):
        fetch[how]()


def test_logserver_unavailable_file_says_why(serve: Serve) -> None:
    client = line_server(serve, with_served_dir)
    with pytest.raises(LogFileUnavailable, match=r"does not exist \(its directory is served\)"):
        client.getf("/out/lab/missing.1")
    with pytest.raises(LogFileUnavailable, match="outside the log server's LOGPATH"):
        client.getf("/etc/passwd")
    with pytest.raises(LogFileUnavailable, match="outside the log server's LOGPATH"):
        client.get("/etc/passwd")
    with pytest.raises(ValueError):
        client.getf("/out/a\nget /etc/shadow")


def test_logserver_delta(serve: Serve) -> None:
    seen: list[str] = []
    client = line_server(serve, delta, seen)
    same = client.delta(10240, 1700000001, "x", PATH)
    assert same.unchanged and same.data == b""
    appended = client.delta(100, 1700000001, "x", PATH)
    assert appended.append and appended.data == CONTENT[100:] and appended.mtime == 1700000009
    whole = client.delta(7, 1, SHA1, PATH)
    assert not whole.append and not whole.unchanged and whole.data == CONTENT
    assert seen[0] == f"delta 10240 1700000001 x {PATH}"


def test_logserver_file_grown_since_list(serve: Serve) -> None:
    client = line_server(serve, grown)
    assert client.getf(PATH)[1] == BIG  # fast path: the rest after the listed size
    done: list[int] = []
    assert client.read(PATH, progress=lambda got, total: done.append(got)).data == BIG  # buffer grown
    assert done[-1] == len(BIG)


def test_logserver_unlisted_file_is_read_whole(serve: Serve) -> None:
    # Listed nowhere (the size is unknown): `get` reads until the close.
    client = line_server(serve, lambda line: b"" if line.startswith("list") else BIG)
    assert client.get(PATH) == BIG


def test_logserver_header_trickled_byte_by_byte(serve: Serve) -> None:
    def on_connection(conn: socket.socket) -> None:
        line = read_line(conn)
        if line.startswith("list"):
            conn.sendall(list_line(len(CONTENT)))
            return
        reply = GETF_HEADER + CONTENT
        for i in range(80):
            conn.sendall(reply[i : i + 1])
            time.sleep(0.001)
        conn.sendall(reply[80:])

    client = LogServerClient("127.0.0.1", serve(on_connection), connect_timeout=2, read_timeout=2)
    assert client.getf(PATH) == (1700000001, CONTENT)
    out = io.BytesIO()
    client.copy_to(PATH, out)
    assert out.getvalue() == CONTENT


@pytest.fixture
def stalls_mid_file(serve: Serve) -> Iterator[Callable[[bool], LogServerClient]]:
    """A client for a log server that sends 5000 bytes of the file, then closes (True) or goes quiet (False)."""
    quiet = threading.Event()

    def make(close: bool) -> LogServerClient:
        def on_connection(conn: socket.socket) -> None:
            line = read_line(conn)
            if line.startswith("list"):
                conn.sendall(list_line(len(CONTENT)))
                return
            conn.sendall(GETF_HEADER + CONTENT[:5000])
            if not close:
                quiet.wait(10)  # until the test is over

        return LogServerClient("127.0.0.1", serve(on_connection), connect_timeout=2, read_timeout=0.3)

    yield make
    quiet.set()


def test_logserver_close_mid_file_is_truncation(stalls_mid_file: Callable[[bool], LogServerClient]) -> None:
    client = stalls_mid_file(True)
    with pytest.raises(TruncatedOutput, match=f"got 5000 of {len(CONTENT)}"):
        client.getf(PATH)
    with pytest.raises(TruncatedOutput, match=f"got 5000 of {len(CONTENT)}"):
        client.read(PATH, progress=lambda done, total: None)


def test_logserver_stall_mid_file_times_out(stalls_mid_file: Callable[[bool], LogServerClient]) -> None:
    client = stalls_mid_file(False)
    start = time.monotonic()
    with pytest.raises(StreamTimeout, match=r"went quiet for 0\.3s during 'getf'"):
        client.getf(PATH)
    # The fast path gives up after at most two read_timeouts of silence.
    assert time.monotonic() - start < 2.0
    with pytest.raises(StreamTimeout, match=r"went quiet for 0\.3s during 'getf'"):
        client.read(PATH, progress=lambda done, total: None)


def test_silent_servers_time_out(serve: Serve) -> None:
    never = threading.Event()
    port = serve(lambda conn: never.wait(5))
    try:
        logserver = LogServerClient("127.0.0.1", port, connect_timeout=2, read_timeout=0.3)
        with pytest.raises(StreamTimeout, match=r"went quiet for 0\.3s during 'version'"):
            logserver.version()
        ecflow = EcflowClient("127.0.0.1", port, connect_timeout=2, read_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(StreamTimeout, match=r"did not answer within 0\.3s"):
            ecflow.ping()
        assert time.monotonic() - start < 1.0
    finally:
        never.set()


# --- ecFlow -------------------------------------------------------------------------------------------------------


def ecflow_server(serve: Serve, reply: bytes, *, pieces: int = 1, cut_at: int | None = None) -> tuple[int, list[bytes]]:
    """An ecFlow server that records each request frame and answers `reply[:cut_at]` in `pieces` sends, then
    closes; returns its port and the frames."""
    frames: list[bytes] = []
    answer = reply if cut_at is None else reply[:cut_at]
    step = max(1, -(-len(answer) // pieces))

    def on_connection(conn: socket.socket) -> None:
        header = conn.recv(wire.HEADER_SIZE, socket.MSG_WAITALL)
        if header[:1] == b"\x16" or header.startswith(b"POST "):
            return  # the client asking, after a reply that never came, whether the port speaks TLS or HTTP
        frames.append(header + conn.recv(wire.decode_header(header), socket.MSG_WAITALL))
        for i in range(0, len(answer), step):
            conn.sendall(answer[i : i + step])
            if pieces > 1:
                time.sleep(0.001)

    return serve(on_connection), frames


def test_ecflow_ping_sends_the_same_bytes_as_the_async_client(serve: Serve) -> None:
    port, frames = ecflow_server(serve, PING_REPLY)
    client = EcflowClient("127.0.0.1", port, user="root")
    assert client.ping() > 0 and client.ping() > 0
    asyncio.run(AsyncEcflowClient("127.0.0.1", port, user="root").ping())
    assert len(frames) == 3 and frames[0] == frames[1] == frames[2]
    identity = client._async._identity
    assert frames[0] == wire.encode_frame(wire.encode_json(commands.ping_request(identity)))


def test_ecflow_reply_trickled_byte_by_byte(serve: Serve) -> None:
    port, _ = ecflow_server(serve, PING_REPLY, pieces=len(PING_REPLY))
    assert EcflowClient("127.0.0.1", port).ping() > 0


@pytest.mark.parametrize(
    ("cut_at", "match"), [(0, "without a reply"), (5, "inside the reply header"), (20, "after 12 of")]
)
def test_ecflow_reply_cut_short(serve: Serve, cut_at: int, match: str) -> None:
    port, _ = ecflow_server(serve, PING_REPLY, cut_at=cut_at)
    with pytest.raises(wire.ProtocolError, match=match):
        EcflowClient("127.0.0.1", port).ping()


def test_ecflow_version_and_server_error(serve: Serve) -> None:
    port, _ = ecflow_server(serve, (DATA / "reply_version_5.9.2.bin").read_bytes())
    assert EcflowClient("127.0.0.1", port).server_version() == "5.9.2"
    port, _ = ecflow_server(serve, (DATA / "reply_error_5.9.2.bin").read_bytes())
    with pytest.raises(commands.ServerError):
        EcflowClient("127.0.0.1", port).get_node("/nope")


def _string_reply(text: str) -> bytes:
    cmd = {"polymorphic_name": "SStringCmd", "ptr_wrapper": {"data": {"str_": text}}}
    return wire.encode_frame(json.dumps({"22ServerToClientResponse": {"stc_cmd_": cmd}}).encode())


def test_ecflow_large_reply_in_pieces(serve: Serve) -> None:
    reply = _string_reply("x" * 500_000)
    port, _ = ecflow_server(serve, reply, pieces=37)
    assert EcflowClient("127.0.0.1", port).file("/s/t") == ("x" * 500_000, False)
    port, _ = ecflow_server(serve, reply, cut_at=300_000)
    with pytest.raises(wire.ProtocolError, match=f"after {300_000 - wire.HEADER_SIZE} of"):
        EcflowClient("127.0.0.1", port).file("/s/t")


# --- the async ecFlow client: non-blocking sockets and the loop's sock_* calls ------------------------------------


def test_async_ecflow_replies_whole_trickled_cut_and_large(serve: Serve) -> None:
    async def go() -> None:
        port, _ = ecflow_server(serve, PING_REPLY, pieces=len(PING_REPLY))
        assert await AsyncEcflowClient("127.0.0.1", port).ping() > 0
        port, _ = ecflow_server(serve, (DATA / "reply_version_5.9.2.bin").read_bytes())
        assert await AsyncEcflowClient("127.0.0.1", port).server_version() == "5.9.2"
        port, _ = ecflow_server(serve, (DATA / "reply_error_5.9.2.bin").read_bytes())
        with pytest.raises(commands.ServerError):
            await AsyncEcflowClient("127.0.0.1", port).get_node("/nope")
        for cut_at, match in [(0, "without a reply"), (5, "inside the reply header"), (20, "after 12 of")]:
            port, _ = ecflow_server(serve, PING_REPLY, cut_at=cut_at)
            with pytest.raises(wire.ProtocolError, match=match):
                await AsyncEcflowClient("127.0.0.1", port).ping()
        reply = _string_reply("x" * 500_000)
        port, _ = ecflow_server(serve, reply, pieces=37)
        assert await AsyncEcflowClient("127.0.0.1", port).file("/s/t") == ("x" * 500_000, False)
        port, _ = ecflow_server(serve, reply, cut_at=300_000)
        with pytest.raises(wire.ProtocolError, match=f"after {300_000 - wire.HEADER_SIZE} of"):
            await AsyncEcflowClient("127.0.0.1", port).file("/s/t")

    asyncio.run(go())


def test_async_ecflow_by_host_name_and_many_at_once(serve: Serve) -> None:
    port, frames = ecflow_server(serve, PING_REPLY)

    async def go() -> list[float]:
        # "localhost" goes through getaddrinfo (and may list ::1 first, where nothing listens).
        client = AsyncEcflowClient("localhost", port)
        return list(await asyncio.gather(*(client.ping() for _ in range(20))))

    assert all(t > 0 for t in asyncio.run(go()))
    assert len(frames) == 20


def test_async_ecflow_silent_server_and_outer_timeout(serve: Serve) -> None:
    never = threading.Event()
    port = serve(lambda conn: never.wait(5))

    async def go() -> None:
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        registered = set(selector.get_map())  # the loop's own wake-up pipe
        start = time.monotonic()
        with pytest.raises(StreamTimeout, match=r"did not answer within 0\.3s"):
            await AsyncEcflowClient("127.0.0.1", port, connect_timeout=2, read_timeout=0.3).ping()
        assert time.monotonic() - start < 1.0
        # A caller's own, shorter timeout (as the health checks have) stays a TimeoutError, and nothing is left
        # registered with the loop.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await AsyncEcflowClient("127.0.0.1", port, read_timeout=5).ping()
        assert set(selector.get_map()) == registered

    try:
        asyncio.run(go())
    finally:
        never.set()


def test_async_ecflow_connect_refused_and_timed_out() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed: int = s.getsockname()[1]
    # A listener whose accept queue is full drops further SYNs: the handshake never ends.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for f in fillers:
        f.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            f.connect(("127.0.0.1", port))

    async def go() -> None:
        with pytest.raises(ConnectError, match=f"127.0.0.1:{closed}: connection refused"):
            await AsyncEcflowClient("127.0.0.1", closed, connect_timeout=2).ping()
        with pytest.raises(ConnectError, match=r"timed out after 0\.3s"):
            await AsyncEcflowClient("127.0.0.1", port, connect_timeout=0.3).ping()

    try:
        asyncio.run(go())
    finally:
        for s in [full, *fillers]:
            s.close()


def _fake_socks5(serve: Serve) -> int:
    """A SOCKS5 proxy without authentication that connects every name to 127.0.0.1 (rdns, as ssh -D)."""

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

    def on_connection(conn: socket.socket) -> None:
        conn.recv(3)
        conn.sendall(b"\x05\x00")
        head = conn.recv(5, socket.MSG_WAITALL)
        rest = conn.recv(head[4] + 2, socket.MSG_WAITALL)
        (port,) = struct.unpack(">H", rest[-2:])
        try:
            far = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            conn.sendall(b"\x05\x05\x00\x01" + bytes(6))
            return
        with far:
            conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
            back = threading.Thread(target=pipe, args=(far, conn), daemon=True)
            back.start()
            pipe(conn, far)
            back.join(5)

    return serve(on_connection)


def test_async_ecflow_through_a_socks_proxy(serve: Serve) -> None:
    port, frames = ecflow_server(serve, PING_REPLY)
    proxy = ("127.0.0.1", _fake_socks5(serve))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed: int = s.getsockname()[1]

    async def go() -> None:
        assert await AsyncEcflowClient("machine1", port, proxy=proxy).ping() > 0
        with pytest.raises(ConnectError, match=f"machine1:{closed} via SOCKS proxy .*connection refused at the far"):
            await AsyncEcflowClient("machine1", closed, proxy=proxy, connect_timeout=2).ping()

    asyncio.run(go())
    assert len(frames) == 1
