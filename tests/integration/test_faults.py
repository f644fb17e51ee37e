"""Faults against a running tunnel: killed ssh and sshd, cut links, restarted services, taken ports, races."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from centre import network
from tests.integration.centres import assert_ping_reaches, settled
from tests.integration.procs import cmdline, ssh_pids

from ecflow_remote.clients.ecflow import EcflowClient
from ecflow_remote.clients.logserver import LogServerClient
from ecflow_remote.errors import AlreadyRunning, EcflowRemoteError
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "ecflow_remote"]


def state(tunnel: Tunnel) -> dict[str, Any]:
    current = tunnel.rundir.read_state()
    return current.to_json() if current else {}


def serves(tunnel: Tunnel) -> bool:
    """Both servers answer a ping and logserver1 its version, through the tunnel now."""
    try:
        for name in ("machine1", "machine2"):
            EcflowClient(*tunnel.endpoint(name), connect_timeout=2, read_timeout=2).ping()
        plan = tunnel.plan()
        e = next(e for e in plan.logservers() if e.host == "logserver1")
        route = plan.route(e)
        LogServerClient(route.host, route.port, **route.proxy_kwargs(), connect_timeout=2, read_timeout=2).version()
    except Exception:
        return False
    return True


def recovered(tunnel: Tunnel, reconnects: int, timeout: float = 20) -> bool:
    def back() -> bool:
        now = state(tunnel)
        return now.get("state") == "up" and now.get("reconnects", 0) > reconnects and serves(tunnel)

    return wait_for(back, timeout, 0.1)


def assert_nothing_left(tunnel: Tunnel) -> None:
    assert wait_for(lambda: not ssh_pids(tunnel.rundir.path), 5), f"ssh left behind: {ssh_pids(tunnel.rundir.path)}"
    assert not tunnel.is_running(), "the lock is still held"
    assert not tunnel.rundir.state_file.exists(), "state.json left behind"


@pytest.fixture
def down_after() -> Iterator[Callable[[Tunnel], Tunnel]]:
    """Register a tunnel to be brought down whatever happens (the test asserts its own clean-up first)."""
    tunnels: list[Tunnel] = []
    yield lambda t: tunnels.append(t) or t  # type: ignore[func-returns-value]
    for t in tunnels:
        t.down()


def free_socks(method: str) -> dict[str, int]:
    """A free SOCKS port for the socks method: 9050 may be another tunnel's on a shared machine."""
    from ecflow_remote.net import free_port

    return {"socks_port": free_port()} if method == "socks" else {}


def kill_sshd_sessions(centre: Any, host: str) -> None:
    """The listener is stopped; established sessions are sshd children that outlive it, as in life: kill them."""
    for pid in network.netns_pids(centre.host(host).netns):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("sshd"):
            os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------- ssh killed


@pytest.mark.parametrize("method", ["local", "socks"])
def test_kill_main_ssh_recovers(tunnel_up: Callable[..., Tunnel], method: str) -> None:
    tunnel = tunnel_up(method, **free_socks(method))
    before = state(tunnel)
    masters = _jump_masters(tunnel)
    os.kill(before["pid"], signal.SIGKILL)
    assert recovered(tunnel, before["reconnects"]), state(tunnel)
    assert state(tunnel)["pid"] != before["pid"]
    # Only the killed leg starts again: the jump master lives on and carries the new main leg (one login).
    assert len(masters) == 1 and _jump_masters(tunnel) == masters
    tunnel.down()
    assert_nothing_left(tunnel)


@pytest.mark.parametrize("which", ["jump master", "ProxyCommand helper", "agent session"])
def test_kill_jump_helpers_recovers(tunnel_up: Callable[..., Tunnel], which: str) -> None:
    tunnel = tunnel_up("local", transport="agent")  # (on this LAN `auto` runs no agent)
    assert settled(tunnel).transport == "agent"
    before = state(tunnel)
    if which == "jump master":
        victims = [p for p in ssh_pids(tunnel.rundir.path) if "-M" in cmdline(p) and _uses(p, "jump.sock")]
    elif which == "agent session":
        # The agent's own ssh (a session on the main leg's connection): the agent ends, the tunnel comes back.
        victims = [
            p for p in ssh_pids(tunnel.rundir.path) if "ControlMaster=no" in cmdline(p) and _uses(p, "main.sock")
        ]
    else:
        victims = [p for p in ssh_pids(tunnel.rundir.path) if "-W" in cmdline(p)]
    assert len(victims) == 1, [cmdline(p) for p in ssh_pids(tunnel.rundir.path)]
    os.kill(victims[0], signal.SIGKILL)
    assert recovered(tunnel, before["reconnects"]), state(tunnel)
    tunnel.down()
    assert_nothing_left(tunnel)


def _jump_masters(tunnel: Tunnel) -> list[int]:
    return [p for p in ssh_pids(tunnel.rundir.path) if "-M" in cmdline(p) and _uses(p, "jump.sock")]


def _uses(pid: int, socket_name: str) -> bool:
    return any(arg.endswith("/" + socket_name) for arg in cmdline(pid))


def test_sigstop_sigcont_of_ssh_recovers(tunnel_up: Callable[..., Tunnel]) -> None:
    """A laptop sleep, as ssh sees it: frozen for a while, then running again."""
    tunnel = tunnel_up("local")
    pid = state(tunnel)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(3)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_for(lambda: serves(tunnel), 20, 0.1)
    assert state(tunnel)["state"] == "up"
    tunnel.down()
    assert_nothing_left(tunnel)


# ------------------------------------------------------------------------------------------ sshd killed


@pytest.mark.parametrize("host", ["jump", "machine1"])
def test_sshd_killed_then_back(make_centre: Callable[..., Any], tunnel_up: Callable[..., Tunnel], host: str) -> None:
    centre = make_centre()
    tunnel = tunnel_up("local", centre)
    before = state(tunnel)
    centre.stop_sshd(host)
    kill_sshd_sessions(centre, host)
    assert wait_for(lambda: state(tunnel).get("state") == "reconnecting", 20), state(tunnel)
    # Says what is wrong, in words, not a traceback.
    message = state(tunnel).get("message", "")
    assert message and "Traceback" not in message, message
    centre.start_sshd(host)
    assert recovered(tunnel, before["reconnects"], timeout=40), state(tunnel)
    tunnel.down()
    assert_nothing_left(tunnel)


# -------------------------------------------------------------------------------------------- link cut


def test_link_cut_detected_and_recovered(tunnel_up: Callable[..., Tunnel], centre: Any) -> None:
    tunnel = tunnel_up("local")
    before = state(tunnel)
    centre.cut_link()
    try:
        # A request while the link is down fails with a clean error (here: no answer in time), never hangs.
        e = next(e for e in tunnel.plan().logservers() if e.host == "logserver1")
        with pytest.raises(EcflowRemoteError):
            LogServerClient(e.local_host, e.local_port, connect_timeout=2, read_timeout=2).version()
        # Keepalives (ServerAliveInterval=5, CountMax=3) notice a dead link in about 15 s.
        assert wait_for(lambda: state(tunnel).get("state") != "up", 25, 0.1), state(tunnel)
        message = state(tunnel).get("message", "")
        assert message and "Traceback" not in message
    finally:
        centre.restore_link()
    assert recovered(tunnel, before["reconnects"], timeout=30), state(tunnel)
    tunnel.down()
    assert_nothing_left(tunnel)


# ------------------------------------------------------------------------------------- services at the Centre


def test_ecflow_server_restart(tunnel_up: Callable[..., Tunnel], centre: Any) -> None:
    tunnel = tunnel_up("local")
    pid = state(tunnel)["pid"]
    centre.stop_server("machine2")
    try:
        checks = {c.endpoint.name: c for c in tunnel.check(3)}
        assert not checks["machine2"].reachable and checks["machine2"].error
        assert checks["machine1"].reachable
    finally:
        centre.start_server("machine2")
    assert wait_for(lambda: serves(tunnel), 15, 0.1)
    # A server restart is not a tunnel fault: the same ssh carries on.
    assert state(tunnel)["pid"] == pid and state(tunnel)["state"] == "up"
    tunnel.down()
    assert_nothing_left(tunnel)


def test_logserver_down(tunnel_up: Callable[..., Tunnel], centre: Any) -> None:
    tunnel = tunnel_up("local")
    centre.stop_logserver("logserver2")
    try:
        checks = {c.endpoint.host: c for c in tunnel.check(3) if c.endpoint.kind == "logserver"}
        assert not checks["logserver2"].reachable and checks["logserver2"].error
        assert checks["logserver1"].reachable
        report = _cli_json(tunnel, "status", "--json")
        row = next(r for r in report["logservers"] if r["host"] == "logserver2")
        assert row["reachable"] is False
        assert report["tunnel"]["state"] == "up"
    finally:
        centre.start_logserver("logserver2")
    assert wait_for(lambda: all(c.reachable for c in tunnel.check(3)), 15, 0.2)
    tunnel.down()
    assert_nothing_left(tunnel)


def _cli(profile: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--profile", str(profile), *args], capture_output=True, text=True, timeout=timeout)


def _cli_json(tunnel: Tunnel, *args: str) -> Any:
    import json

    out = _cli(tunnel.profile.path, *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# -------------------------------------------------------------------------------------------- local ports


@pytest.fixture
def occupied() -> Iterator[Callable[[str, int], socket.socket]]:
    socks: list[socket.socket] = []

    def take(host: str, port: int) -> socket.socket:
        s = socket.socket()
        socks.append(s)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Another tunnel on this machine may hold it for a while: wait for it, the test needs it held by us.
        if not wait_for(lambda: _bind(s, host, port), 30, 0.2):
            pytest.fail(f"{host}:{port} stayed busy for 30 s: another process on this machine holds it")
        s.listen()
        return s

    yield take
    for s in socks:
        s.close()


def _free_server_port() -> int:
    """A port free on 127.0.0.1 that ecflow_server accepts (1024-49151), below the kernel's ephemeral range, which
    other programs' free ports come from."""
    for port in random.sample(range(20000, 32768), 200):
        with socket.socket() as s:
            if _bind(s, "127.0.0.1", port):
                return port
    raise AssertionError("no free port in 20000-32767 on 127.0.0.1")


def _bind(s: socket.socket, host: str, port: int) -> bool:
    try:
        s.bind((host, port))
    except OSError:
        return False
    return True


def test_port_in_use_local_moves_and_says_so(
    make_centre: Callable[..., Any], profile_for: Callable[..., Path], occupied: Callable[[str, int], socket.socket]
) -> None:
    from centre.centre import EcflowServerSpec, LogServerSpec

    # A server port of this test's own, not 4141: another tunnel on the machine may hold 4141 as long as it likes.
    wanted = _free_server_port()
    centre = make_centre(
        servers=(EcflowServerSpec("machine1", wanted, "lab", "logserver1"),), logservers=(LogServerSpec("logserver1"),)
    )
    occupied("127.0.0.1", wanted)
    profile = profile_for("local", centre)
    tunnel = Tunnel(profile)
    try:
        out = _cli(profile, "up", "--detach")
        assert out.returncode == 0, out.stderr
        assert f"{wanted} was taken" in out.stdout
        host, port = tunnel.endpoint(f"machine1-{wanted}")  # the Centre's profile names a server by its port
        assert (host, port) != ("127.0.0.1", wanted)
        assert_ping_reaches(centre, centre.server("machine1"), EcflowClient(host, port, user="moved-port"))
    finally:
        _cli(profile, "down")
    assert_nothing_left(tunnel)


@pytest.mark.parametrize("method", ["hosts", "socks"])
def test_port_in_use_hosts_socks_fails_cleanly(
    profile_for: Callable[..., Path], occupied: Callable[[str, int], socket.socket], method: str
) -> None:
    from ecflow_remote.endpoints import alias_net
    from ecflow_remote.net import free_port
    from ecflow_remote.profile.load import load_profile

    socks_port = free_port()
    profile = profile_for(method, socks_port=socks_port)
    if method == "hosts":
        occupied(alias_net(load_profile(profile)) + "1", 4141)
    else:
        occupied("127.0.0.1", socks_port)
    tunnel = Tunnel(profile)
    out = _cli(profile, "up", "--detach")
    assert out.returncode == 1
    assert "in use" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert_nothing_left(tunnel)


# -------------------------------------------------------------------------------------------- races


def test_two_up_at_once(profile_for: Callable[..., Path]) -> None:
    profile = profile_for("local")
    tunnel = Tunnel(profile)
    try:
        procs = [
            subprocess.Popen(
                [*CLI, "--profile", str(profile), "up", "--detach"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(p.wait(60), *p.communicate()) for p in procs]
        codes = sorted(r[0] for r in results)
        # One starts it; the other either says another start is under way, or (if it came late enough to find it
        # up) that it is already up — success for a login script calling `up --detach` twice.
        assert codes in ([0, 1], [0, 0]), results
        for code, _, stderr in results:
            if code == 1:
                assert re.search("already running|same moment|this moment", stderr), stderr
        assert sum("Already up." in r[1] for r in results) == (1 if codes == [0, 0] else 0), results
        assert tunnel.is_running() and serves(tunnel)
        # And a third, later `up` reports the running one, with its pid.
        with pytest.raises(AlreadyRunning, match=r"ssh pid \d+"):
            Tunnel(profile).up()
        assert serves(tunnel)
    finally:
        _cli(profile, "down")
    assert_nothing_left(tunnel)


def test_supervisor_killed_then_up_and_down_clean(profile_for: Callable[..., Path], down_after: Any) -> None:
    profile = profile_for("local")
    tunnel = down_after(Tunnel(profile))
    tunnel.up()
    first = state(tunnel)
    os.kill(first["supervisor_pid"], signal.SIGKILL)
    # ssh dies with its supervisor (PR_SET_PDEATHSIG): no orphan holds the ports.
    assert wait_for(lambda: not ssh_pids(tunnel.rundir.path), 5), [cmdline(p) for p in ssh_pids(tunnel.rundir.path)]
    assert wait_for(lambda: not tunnel.is_running(), 5)  # the kernel frees the lock as the process ends, not at kill
    # `up` again takes over cleanly from the leftovers.
    again = Tunnel(profile)
    again.up()
    assert serves(again)
    assert state(again)["supervisor_pid"] != first["supervisor_pid"]
    os.kill(state(again)["supervisor_pid"], signal.SIGKILL)
    assert wait_for(lambda: not again.is_running(), 5)
    # `down` after a dead supervisor clears what it left.
    out = _cli(profile, "down")
    assert out.returncode == 0, out.stderr
    assert_nothing_left(again)
