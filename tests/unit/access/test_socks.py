"""The authenticated SOCKS5 front: refused without the right credentials, a clean relay with them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from python_socks import ProxyError, ProxyType
from python_socks.sync import Proxy
from tests.unit.access.other_account import foreign_client, needs_root

from ecflow_remote.access.socks import Credentials, SocksFront, socket_path

CREDS = Credentials("ecflow-remote", "s3cret-for-tests")


class _LoopThread:
    """An event loop in a thread, for the fake ssh -D and the echo server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)  # type: ignore[arg-type]

    @staticmethod
    async def _cancel_all() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self.run(self._cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


# Strong references: Python 3.11 lets a start_server handler task pending on a gather be garbage-collected.
_HANDLERS: set[asyncio.Task[None] | None] = set()


async def _fake_ssh_dynamic(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What ssh -D does on its unix socket: SOCKS5 without authentication, CONNECT only."""
    task = asyncio.current_task()
    _HANDLERS.add(task)  # type: ignore[arg-type]
    try:
        await _dynamic(reader, writer)
    except asyncio.IncompleteReadError:
        pass  # the front connects ahead of the password check: a refused client's connection ends here
    finally:
        writer.close()
        _HANDLERS.discard(task)  # type: ignore[arg-type]


async def _dynamic(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    assert await reader.readexactly(3) == b"\x05\x01\x00"
    writer.write(b"\x05\x00")
    ver, cmd, _, atyp = await reader.readexactly(4)
    assert (ver, cmd) == (5, 1)
    if atyp == 3:
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
    else:
        host = socket.inet_ntoa(await reader.readexactly(4))
    (port,) = struct.unpack(">H", await reader.readexactly(2))
    try:
        r2, w2 = await asyncio.open_connection("127.0.0.1" if host == "echo.centre" else host, port)
    except OSError:
        writer.write(b"\x05\x05\x00\x01" + bytes(6))
        return
    writer.write(b"\x05\x00\x00\x01" + bytes(6))
    await asyncio.gather(_pipe(reader, w2), _pipe(r2, writer))
    w2.close()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    _HANDLERS.add(task)  # type: ignore[arg-type]
    try:
        await _pipe(reader, writer)
    finally:
        writer.close()
        _HANDLERS.discard(task)  # type: ignore[arg-type]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[SocksFront, int]]:
    """(front, echo port): the front on a free loopback port, a fake ssh -D behind it, an echo server."""
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    helpers = _LoopThread()
    upstream = helpers.run(asyncio.start_unix_server(_fake_ssh_dynamic, str(socket_path(rundir))))
    echo = helpers.run(asyncio.start_server(_echo, "127.0.0.1", 0))
    echo_port = echo.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    front = SocksFront(("127.0.0.1", 0), socket_path(rundir), CREDS).start()
    try:
        yield front, echo_port
    finally:
        front.stop()
        helpers.run(_close(upstream, echo))  # on their loop: Server.close() from another thread races its detach
        helpers.stop()


async def _close(*servers: object) -> None:
    for server in servers:
        server.close()  # type: ignore[attr-defined]


def _proxy(front: SocksFront, user: str | None = None, password: str | None = None) -> Proxy:
    return Proxy(ProxyType.SOCKS5, "127.0.0.1", front.port, username=user, password=password, rdns=True)


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)  # the half-close must travel through the relay, and the echo come back
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def _wait_idle(front: SocksFront, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while front.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not front.connections, f"{len(front.connections)} connections left open"


def test_right_credentials_reach_the_far_end_by_name(setup: tuple[SocksFront, int]) -> None:
    front, echo_port = setup
    with _proxy(front, *CREDS.pair()).connect("echo.centre", echo_port, timeout=5) as sock:
        assert _roundtrip(sock, b"hello through the front") == b"hello through the front"
    _wait_idle(front)


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("ecflow-remote", "wrong"), ("someone", CREDS.password), ("", "")],
    ids=["none", "wrong-password", "wrong-user", "empty"],
)
def test_no_or_wrong_credentials_refused(setup: tuple[SocksFront, int], user: str | None, password: str | None) -> None:
    front, echo_port = setup
    with pytest.raises(ProxyError):
        _proxy(front, user, password).connect("echo.centre", echo_port, timeout=5)
    _wait_idle(front)


def test_raw_protocol_refusals(setup: tuple[SocksFront, int]) -> None:
    front, _ = setup
    cases = [
        (b"\x05\x01\x00", b"\x05\xff"),  # no authentication offered only: no acceptable method
        (b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00", b""),  # SOCKS4: no password in the protocol, dropped
        (b"\x05\x01\x02\x01\x01x\x01y", b"\x05\x02\x01\x01"),  # asked for a password, wrong one
    ]
    for request, reply in cases:
        with socket.create_connection(("127.0.0.1", front.port), timeout=5) as s:
            s.sendall(request)
            got = b""
            while chunk := s.recv(100):
                got += chunk
            assert got == reply, request
    _wait_idle(front)


@needs_root
def test_another_account_is_refused_even_with_the_password(setup: tuple[SocksFront, int]) -> None:
    """Linux: a client of another uid gets no SOCKS answer at all, whatever it knows; ours still gets through."""
    front, echo_port = setup
    user, password = (x.encode() for x in CREDS.pair())
    handshake = bytes([5, 1, 2, 1, len(user)]) + user + bytes([len(password)]) + password
    connect = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + echo_port.to_bytes(2, "big")
    assert foreign_client(front.port, handshake + connect) in ("reset", "eof")
    assert (front.foreign, front.refused) == (1, 0)
    with _proxy(front, *CREDS.pair()).connect("echo.centre", echo_port, timeout=5) as sock:
        assert _roundtrip(sock, b"mine") == b"mine"
    _wait_idle(front)


def test_ssh_away_gives_a_socks_failure_not_a_hang(tmp_path: Path) -> None:
    front = SocksFront(("127.0.0.1", 0), tmp_path / "absent.sock", CREDS).start()
    try:
        with pytest.raises(ProxyError):
            _proxy(front, *CREDS.pair()).connect("echo.centre", 1, timeout=5)
        _wait_idle(front)
    finally:
        front.stop()


def test_many_concurrent_connections_and_bulk(setup: tuple[SocksFront, int]) -> None:
    front, echo_port = setup
    big = os.urandom(4 << 20)

    def one(i: int) -> bool:
        payload = big if i % 20 == 0 else f"request {i}".encode() * 50
        with _proxy(front, *CREDS.pair()).connect("echo.centre", echo_port, timeout=10) as sock:
            return _roundtrip(sock, payload) == payload

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(one, range(200)))
    _wait_idle(front)


def test_stop_drops_live_connections_and_frees_the_port(setup: tuple[SocksFront, int]) -> None:
    front, echo_port = setup
    sock = _proxy(front, *CREDS.pair()).connect("echo.centre", echo_port, timeout=5)
    sock.settimeout(5)
    front.stop()
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(10) == b""
    sock.close()
    assert not front.connections
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", front.port))  # the listener is gone


def test_credentials_file_is_private_and_round_trips(tmp_path: Path) -> None:
    creds = Credentials.new()
    path = creds.write(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Credentials.read(path) == creds
    assert creds.password not in repr(creds)
    assert Credentials.new().password != creds.password
    assert Credentials.read(tmp_path / "missing") is None
