"""The agent when things go wrong: refused and silent targets, a killed or frozen agent, no python3 at the far end."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest
from centre.isolation import is_resolver_isolated
from tests.unit.transport.agent.agent_fixtures import echo, exchange, pattern, read_all, run, sender, serve, start

from ecflow_remote.transport.agent import AgentDied, AgentError, AgentOpenError, AgentUnavailable, frames


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited: it only waits for its parent.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


async def wait_gone(pid: int) -> None:
    while pid_alive(pid):
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_target_fails_the_open_and_resets_a_local_client() -> None:
    async def main() -> None:
        port = free_port()  # nothing listens there
        session = await start()
        front = await asyncio.start_server(lambda r, w: session.pipe(r, w, "127.0.0.1", port), "127.0.0.1", 0)
        try:
            with pytest.raises(AgentOpenError) as failed:
                await session.open("127.0.0.1", port, wait=True)
            assert failed.value.code == "refused"
            assert "refused" in str(failed.value)
            # Without waiting: the local client's bytes went out with the OPEN; it gets a reset, not a hang.
            reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
            writer.write(b"request")
            with pytest.raises(ConnectionResetError):
                await reader.read()
            writer.close()
            assert not session.closed  # one stream failed, not the session
            server, echo_port = await serve(echo)
            assert await exchange(session, echo_port, b"still fine") == b"still fine"
            server.close()
        finally:
            front.close()
            await session.close()

    run(main())


def test_target_that_never_answers_times_out_at_the_far_end() -> None:
    async def main() -> None:
        # A listener with a full accept queue: the kernel drops further SYNs, so connect() hangs.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))
        session = await start(connect_timeout=0.5)
        try:
            with pytest.raises(AgentOpenError) as failed:
                await session.open("127.0.0.1", port, wait=True)
            assert failed.value.code == "timeout"
            chan = await session.open("127.0.0.1", port)
            chan.write(b"hello?")
            with pytest.raises(frames.OpenFailed):
                await chan.read()
        finally:
            await session.close()
            filler.close()
            listener.close()

    run(main())


@pytest.mark.skipif(not is_resolver_isolated(), reason="needs the test session's private resolver (root)")
def test_unknown_host_is_reported_as_such() -> None:
    async def main() -> None:
        session = await start()
        try:
            with pytest.raises(AgentOpenError) as failed:
                await session.open("no-such-host.invalid", 80, wait=True)
            assert failed.value.code == "unknown-host"
        finally:
            await session.close()

    run(main())


def test_agent_killed_mid_stream_closes_every_local_stream() -> None:
    async def main() -> None:
        big_server, big_port = await serve(sender(pattern(64 << 20)))
        session = await start(window=256 << 10)
        front = await asyncio.start_server(lambda r, w: session.pipe(r, w, "127.0.0.1", big_port), "127.0.0.1", 0)
        try:
            chans = [await session.open("127.0.0.1", big_port) for _ in range(3)]
            clients = [await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1]) for _ in range(3)]
            first = [await c.read() for c in chans]
            first += [await r.read(1) for r, _ in clients]
            assert all(first)  # every stream is streaming
            os.kill(session.hello["pid"], signal.SIGKILL)
            reason = await session.wait_closed()
            assert session.closed and session.reason == reason
            for chan in chans:
                with pytest.raises(frames.SessionDied):
                    await read_all(chan)
            for reader, writer in clients:
                with pytest.raises(ConnectionResetError):
                    await reader.read()
                writer.close()
            with pytest.raises(AgentDied):
                await session.open("127.0.0.1", big_port)
            with pytest.raises(AgentDied):
                await session.ping()
            assert session.process is not None
            await session.close()
            assert session.process.returncode is not None
        finally:
            front.close()
            big_server.close()

    run(main())


def test_close_leaves_no_far_process() -> None:
    async def main() -> None:
        server, port = await serve(echo)
        session = await start()
        chan = await session.open("127.0.0.1", port)
        chan.write(b"open stream")
        assert await chan.read() == b"open stream"
        pid = session.hello["pid"]
        assert pid_alive(pid)
        await session.close()
        await wait_gone(pid)
        assert session.process is not None and session.process.returncode is not None
        with pytest.raises(frames.SessionDied):
            await chan.read()
        server.close()

    run(main())


def test_keepalive_ends_a_session_whose_agent_stopped_answering() -> None:
    async def main() -> None:
        session = await start()
        pid = session.hello["pid"]
        try:
            os.kill(pid, signal.SIGSTOP)  # a frozen far end: the pipe stays open, nothing answers
            session.keepalive(interval=0.05, timeout=0.5)
            reason = await session.wait_closed()
            assert "ping" in reason
        finally:
            os.kill(pid, signal.SIGKILL)
            await session.close()

    run(main())


def test_no_python_is_a_distinct_error(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(AgentUnavailable) as missing:
            await start(pythons=(str(tmp_path / "python3"), "/nonexistent/python3"))
        assert "no python3 >= 3.6" in str(missing.value)

    run(main())


def test_too_old_python_is_skipped_for_the_next_one(tmp_path: Path) -> None:
    old = tmp_path / "python3.5"
    old.write_text("#!/bin/sh\n# what the bootstrap's version check does on python3 < 3.6\nexit 96\n")
    old.chmod(0o755)

    async def main() -> None:
        with pytest.raises(AgentUnavailable):
            await start(pythons=(str(old),))
        session = await start(pythons=(str(old), "/usr/bin/python3"))
        server, port = await serve(echo)
        assert await exchange(session, port, b"found the second python") == b"found the second python"
        await session.close()
        server.close()

    run(main())


def test_ssh_failure_is_an_agent_error_with_its_words() -> None:
    async def main() -> None:
        with pytest.raises(AgentError) as failed:
            await start(["sh", "-c", 'echo "ssh: connect to host machine1 port 22: No route to host" >&2; exit 255'])
        assert not isinstance(failed.value, AgentUnavailable)
        assert "No route to host" in str(failed.value)

    run(main())


def test_a_pipe_carrying_garbage_ends_the_session(tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)

    async def main() -> None:
        # The far program runs, then something else writes on the same stdout: the frames are broken.
        garbage = 'printf "\\377\\377\\377\\377\\377\\377\\377\\377\\377"'
        session = await start(["sh", "-c", f'(read x < {go}; {garbage}) & eval "$1"', "sh"])
        go.write_text("now\n")  # only once the session runs: before the marker it would be a banner
        reason = await session.wait_closed()
        assert "bad frame" in reason
        await session.close()

    run(main())
