"""The agent's streams end to end: the real far program (/usr/bin/python3, over pipes) against local TCP servers."""

from __future__ import annotations

import asyncio

from tests.unit.transport.agent.agent_fixtures import echo, exchange, pattern, read_all, run, sender, serve, start

# The far program's stdout goes through this before it reaches the session: a link of 8 MB/s, so a big
# transfer takes seconds and what overtakes it is decided by the scheduling, not by the machine's speed.
THROTTLE = """
import os, time
rate, t0, sent = 8e6, time.monotonic(), 0
while True:
    data = os.read(0, 16384)
    if not data:
        break
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
    sent += len(data)
    ahead = sent / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
"""
THROTTLED_ARGV = ["sh", "-c", 'eval "$2" | /usr/bin/python3 -c "$1"', "sh", THROTTLE]


def test_echo_ping_and_banner_skipped() -> None:
    async def main() -> None:
        server, port = await serve(echo)
        # A login shell that prints a banner on stdout before the agent: the session finds its marker.
        session = await start(["sh", "-c", 'echo "Welcome to machine1"; printf "no newline"; eval "$1"', "sh"])
        try:
            assert session.banner == b"Welcome to machine1\nno newline"
            assert session.hello["python"].startswith("3.")
            assert await exchange(session, port, b"hello agent") == b"hello agent"
            assert await session.ping() > 0
            stats = session.stats()
            assert stats["streams_total"] == 1 and stats["raw_out"] == stats["raw_in"] == len(b"hello agent")
        finally:
            await session.close()
            server.close()

    run(main())


def test_two_hundred_concurrent_streams_byte_exact() -> None:
    async def main() -> None:
        server, port = await serve(echo)
        session = await start()
        try:
            payloads = [pattern(1000 + 797 * i, seed=i) for i in range(200)]
            replies = await asyncio.gather(*(exchange(session, port, p) for p in payloads))
            assert [len(r) for r in replies] == [len(p) for p in payloads]
            assert replies == payloads
            assert session.stats()["streams_total"] == 200
            assert session.stats()["streams_open"] == 0  # every stream finished and was forgotten
        finally:
            await session.close()
            server.close()

    run(main())


def test_accepted_local_connection_relayed_with_pipe() -> None:
    async def main() -> None:
        server, port = await serve(echo)
        session = await start()
        front = await asyncio.start_server(lambda r, w: session.pipe(r, w, "127.0.0.1", port), "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
            data = pattern(3 << 20, seed=7)
            writer.write(data)
            writer.write_eof()
            assert await reader.read() == data
            writer.close()
        finally:
            front.close()
            await session.close()
            server.close()

    run(main())


def test_small_requests_overtake_a_big_output_in_flight() -> None:
    """20 MB streaming on a slow pipe: small requests made meanwhile complete before it does (no FIFO)."""

    async def main() -> None:
        big = pattern(20 << 20, seed=1)
        big_server, big_port = await serve(sender(big))
        server, port = await serve(echo)
        session = await start(THROTTLED_ARGV, compress="never")
        try:
            chan = await session.open("127.0.0.1", big_port)
            chan.write_eof()
            progress = [0]
            download = asyncio.ensure_future(read_all(chan, progress))
            while progress[0] < (1 << 20):  # the big output is streaming
                await asyncio.sleep(0.01)
            for i in range(10):
                assert await exchange(session, port, b"small request %d" % i) == b"small request %d" % i
            # Order, not timing: all ten small replies came through while the big one was still arriving.
            assert not download.done()
            assert progress[0] < len(big)
            assert await download == big
        finally:
            await session.close()
            big_server.close()
            server.close()

    run(main())


def test_a_reader_that_stops_pauses_only_its_stream() -> None:
    async def main() -> None:
        window = 256 << 10
        big = pattern(8 << 20, seed=2)
        big_server, big_port = await serve(sender(big))
        server, port = await serve(echo)
        session = await start(window=window)
        try:
            stalled = await session.open("127.0.0.1", big_port)
            stalled.write_eof()
            # Nobody reads `stalled`; another stream moves far more than a window meanwhile.
            other = pattern(4 << 20, seed=3)
            assert await exchange(session, port, other) == other
            for _ in range(20):
                await asyncio.sleep(0.02)
            held = session.stats()["streams"][stalled.sid]["raw_in"]
            # Flow control: the far side sent at most one window ahead of what was read.
            assert 0 < held <= window
            assert await read_all(stalled) == big  # and it resumes once read
        finally:
            await session.close()
            big_server.close()
            server.close()

    run(main())


def test_compression_on_text_not_on_random_bytes() -> None:
    async def main() -> None:
        text = b"".join(
            b"%06d 2024-05-01 12:00:00 task /suite/f1/hello step %d ok\n" % (i, i % 7) for i in range(60000)
        )
        noise = pattern(len(text), seed=4)
        text_server, text_port = await serve(sender(text))
        noise_server, noise_port = await serve(sender(noise))
        session = await start(compress="always")
        try:
            for port, expected in ((text_port, text), (noise_port, noise)):
                chan = await session.open("127.0.0.1", port)
                chan.write_eof()
                assert await read_all(chan) == expected
                assert chan.raw_in == len(expected)
                if expected is text:
                    assert chan.wire_in < len(text) / 4
                else:
                    assert chan.wire_in >= len(noise)  # sent as it is (the probe said no)
        finally:
            await session.close()
            text_server.close()
            noise_server.close()

    run(main())


def test_no_compression_when_told_never() -> None:
    async def main() -> None:
        text = b"all work and no play " * 50000
        server, port = await serve(sender(text))
        session = await start(compress="never")
        try:
            chan = await session.open("127.0.0.1", port)
            chan.write_eof()
            assert await read_all(chan) == text
            assert chan.wire_in == len(text)
        finally:
            await session.close()
            server.close()

    run(main())
