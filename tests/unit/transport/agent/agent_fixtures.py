"""Helpers for the agent's unit tests: the far program run by /usr/bin/python3 as a local subprocess, and servers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ecflow_remote.transport.agent import AgentOptions, AgentSession, Channel

T = TypeVar("T")

# The remote command is appended to this as "$1": the same `sh -c` an ssh server would run, but local.
LOCAL_ARGV = ["sh", "-c", 'eval "$1"', "sh"]
PYTHON = ("/usr/bin/python3",)


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    """Run a test coroutine; the timeout only turns a hang into a failure (no timing is asserted)."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


async def start(argv: list[str] | None = None, **options: Any) -> AgentSession:
    options.setdefault("pythons", PYTHON)
    return await AgentSession.start(argv or LOCAL_ARGV, AgentOptions(**options))


async def serve(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> tuple[Any, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except ConnectionError:
        pass
    finally:
        writer.close()


def pattern(size: int, seed: int = 0) -> bytes:
    """Incompressible, reproducible bytes, so a byte out of place is seen."""
    return random.Random(seed).randbytes(size)


def sender(payload: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A server that sends `payload` on every new connection, then closes (as a log server sends a file)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(payload)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return handler


async def read_all(chan: Channel, progress: list[int] | None = None) -> bytes:
    parts = []
    while data := await chan.read():
        parts.append(data)
        if progress is not None:
            progress[0] += len(data)
    return b"".join(parts)


async def exchange(session: AgentSession, port: int, request: bytes) -> bytes:
    """One request on a new stream, as an ecFlow client makes them: write, half close, read the whole reply."""
    chan = await session.open("127.0.0.1", port)
    chan.write(request)
    chan.write_eof()
    return await read_all(chan)
