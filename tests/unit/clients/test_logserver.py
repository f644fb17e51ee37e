"""Log-server protocol logic against a tiny fake server on 127.0.0.1 that answers like ecflow_logsvr.pl."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tests.unit.clients.logserver_fakes import (
    BROKEN_GETF,
    CONTENT,
    PATH,
    SHA1,
    answering_getf,
    delta,
    honest,
    list_line,
    with_dir,
)

from ecflow_remote.clients.logserver import AsyncLogServerClient, parse_header, parse_list
from ecflow_remote.errors import LogFileUnavailable, LogServerError, TruncatedOutput

Handler = Callable[[str], bytes]


def run_with(handler: Handler, body: Callable[[AsyncLogServerClient], object]) -> list[str]:
    """Start the fake server, run `body(client)`, return the request lines the server saw."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode().rstrip("\n")
        seen.append(line)
        writer.write(handler(line))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            client = AsyncLogServerClient("127.0.0.1", port, connect_timeout=2, read_timeout=2)
            await body(client)  # type: ignore[misc]

    asyncio.run(main())
    return seen


def test_header_and_list_parsing() -> None:
    assert parse_header(b"0:17:x:data") == ("0", 17, "x", 7)
    assert parse_header(b"0:::") == ("0", None, "", 4)
    with pytest.raises(LogServerError, match="not an ecFlow log server"):
        parse_header(b"HTTP/1.0 400")
    entries = parse_list(list_line(12, "/out/with space/t.1"))
    assert entries[0].size == 12 and entries[0].path == "/out/with space/t.1"
    with pytest.raises(TruncatedOutput, match="mid-line"):
        parse_list(list_line(12)[:-3])


def test_version_get_getf_and_progress() -> None:
    progress: list[tuple[int, int | None]] = []

    async def body(client: AsyncLogServerClient) -> None:
        assert await client.version() == "2"
        assert await client.get(PATH) == CONTENT
        mtime, data = await client.getf(PATH)
        assert (mtime, data) == (1700000001, CONTENT)
        result = await client.read(PATH, progress=lambda done, total: progress.append((done, total)))
        assert result.checksum == SHA1 and result.expected_size == len(CONTENT)

    seen = run_with(honest, body)
    assert seen[:3] == ["version", f"list {PATH}", f"get {PATH}"]
    assert progress[-1] == (len(CONTENT), len(CONTENT))


@pytest.mark.parametrize(("reply", "error", "match"), BROKEN_GETF)
def test_broken_getf_is_an_error_not_a_short_file(reply: bytes, error: type[Exception], match: str) -> None:
    async def body(client: AsyncLogServerClient) -> None:
        with pytest.raises(error, match=match):
            await client.getf(PATH)

    run_with(answering_getf(reply), body)


def test_missing_file_and_path_outside_logpath() -> None:
    async def body(client: AsyncLogServerClient) -> None:
        with pytest.raises(LogFileUnavailable, match=r"does not exist \(its directory is served\)"):
            await client.getf("/out/lab/missing.1")
        with pytest.raises(LogFileUnavailable, match="outside the log server's LOGPATH"):
            await client.getf("/etc/passwd")

    run_with(with_dir, body)


def test_delta_replies() -> None:
    async def body(client: AsyncLogServerClient) -> None:
        same = await client.delta(10240, 1700000001, "x", PATH)
        assert same.unchanged and same.data == b""
        grown = await client.delta(100, 1700000001, "x", PATH)
        assert grown.append and grown.data == CONTENT[100:] and grown.mtime == 1700000009
        whole = await client.delta(7, 1, SHA1, PATH)
        assert not whole.append and not whole.unchanged and whole.data == CONTENT

    seen = run_with(delta, body)
    assert seen[0] == f"delta 10240 1700000001 x {PATH}"


def test_paths_with_newlines_are_refused() -> None:
    async def body(client: AsyncLogServerClient) -> None:
        with pytest.raises(ValueError):
            await client.getf("/out/a\nget /etc/shadow")

    run_with(honest, body)
