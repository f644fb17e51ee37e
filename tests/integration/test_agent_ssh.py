"""The far-side agent over real ssh (jump -> machine1 of the simulated Centre): ecFlow and log servers by name."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ecflow_remote.clients.ecflow import AsyncEcflowClient
from ecflow_remote.clients.logserver import AsyncLogServerClient
from ecflow_remote.transport.agent import AgentOpenError, AgentSession, control_session_argv

pytestmark = pytest.mark.integration
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


def ssh_argv(centre: Any) -> list[str]:
    """ssh to the workstation through the jump host, as the how-to does, but for a command on stdin/stdout."""
    return ["ssh", "-F", str(centre.ssh_config), "-J", centre.jump, "-o", "BatchMode=yes", "-T", centre.workstation]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def gone(*pids: int, within: float = 10) -> bool:
    for _ in range(int(within / 0.05)):
        if not any(alive(p) for p in pids):
            return True
        await asyncio.sleep(0.05)
    return False


async def front(session: AgentSession, host: str, port: int) -> tuple[asyncio.Server, int]:
    """A local listener whose connections go to host:port through the agent (as the supervisor's will)."""
    server = await asyncio.start_server(lambda r, w: session.pipe(r, w, host, port), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_ecflow_and_log_servers_by_name_through_the_agent(centre: Any) -> None:
    server = centre.servers[0]
    logserver = centre.logservers[0]
    jobout = centre.jobout(server)

    async def main() -> None:
        session = await AgentSession.start(ssh_argv(centre))
        try:
            agent_pid = session.hello["pid"]
            shell_pid = parent(agent_pid)
            assert alive(agent_pid)
            assert await session.ping() > 0
            # ecFlow: the native client and python3-ecflow through a local listener; the Centre's names are
            # resolved at the far side.
            ecflow_front, ecflow_port = await front(session, server.host, server.port)
            native = AsyncEcflowClient("127.0.0.1", ecflow_port)
            assert await native.ping() > 0
            assert (await native.server_version()).startswith("5.")
            # ecflow_client in its own process (python3-ecflow holds the GIL while it waits for the reply, so it
            # cannot share a process with an asyncio relay).
            reference = await asyncio.create_subprocess_exec(
                "ecflow_client",
                "--ping",
                "--host",
                "127.0.0.1",
                "--port",
                str(ecflow_port),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await reference.communicate()
            assert reference.returncode == 0 and b"succeeded" in out
            # The log server by name: a job output, byte for byte.
            log_front, log_port = await front(session, logserver.host, logserver.port)
            output = await AsyncLogServerClient("127.0.0.1", log_port).get(str(jobout))
            assert output == centre.exec(server.host, ["cat", str(jobout)]).stdout.encode()
            # A host the Centre does not know, and a port nothing listens on: quick, named failures.
            with pytest.raises(AgentOpenError) as unknown:
                await session.open("no-such-host", 4141, wait=True)
            assert unknown.value.code == "unknown-host"
            with pytest.raises(AgentOpenError) as refused:
                await session.open(server.host, 1, wait=True)
            assert refused.value.code == "refused"
            stats = session.stats()
            assert stats["streams_total"] >= 5 and stats["raw_in"] > len(output)
            ecflow_front.close()
            log_front.close()
        finally:
            await session.close()
        # Nothing stays behind on the workstation: the agent and the shell that started it are gone.
        assert await gone(agent_pid, shell_pid)
        assert session.process is not None and session.process.returncode is not None

    run(main())


def test_agent_as_second_session_of_a_control_master(centre: Any, tmp_path: Path) -> None:
    """The real tunnel's set-up: a master holding the pty session, the agent beside it on the same connection."""
    control = tmp_path / "ctl"
    master = subprocess.Popen(
        [*ssh_argv(centre)[:-2], "-M", "-S", str(control), "-tt", centre.workstation, "exec sleep 600"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = centre.servers[1]

    async def main() -> None:
        for _ in range(200):
            if control.exists():
                break
            await asyncio.sleep(0.05)
        argv = control_session_argv("ssh", control, centre.workstation, ["-F", str(centre.ssh_config)])
        session = await AgentSession.start(argv)
        agent_pid = session.hello["pid"]
        try:
            ecflow_front, port = await front(session, server.host, server.port)
            assert await AsyncEcflowClient("127.0.0.1", port).ping() > 0
            ecflow_front.close()
        finally:
            await session.close()
        assert await gone(agent_pid)
        assert master.poll() is None  # closing the agent's session leaves the master and its pty session

    try:
        run(main())
    finally:
        os.killpg(master.pid, signal.SIGKILL)
        master.wait(5)


def test_agent_killed_at_the_far_end_ends_the_session(centre: Any) -> None:
    server = centre.servers[0]

    async def main() -> None:
        session = await AgentSession.start(ssh_argv(centre))
        try:
            ecflow_front, port = await front(session, server.host, server.port)
            assert await AsyncEcflowClient("127.0.0.1", port).ping() > 0
            os.kill(session.hello["pid"], signal.SIGKILL)
            reason = await session.wait_closed()
            assert reason
            # ssh itself ends once its remote command is gone.
            assert session.process is not None
            await asyncio.wait_for(session.process.wait(), 10)
            with pytest.raises(ConnectionError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"x")
                await reader.read()
                raise ConnectionResetError("closed without a reset")  # an EOF would also be a clear end
            ecflow_front.close()
        finally:
            await session.close()

    run(main())
