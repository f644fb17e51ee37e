"""A tunnel's life against the simulated Centre: `down` and `status` whatever the profile says now (broken, moved,
every tunnel with --all), and a foreground `up` that takes its tunnel with it however it ends."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.procs import pids_naming, ssh_pids

from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

CLI = [sys.executable, "-m", "ecflow_remote"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=90)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose here (its parent, this test, may not have reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def detached(profile_for: Callable[..., Path]) -> Iterator[Callable[[str], tuple[Path, Tunnel, list[int]]]]:
    """detached(method) -> (profile, its Tunnel, the pids of its supervisor and every ssh), up by `up --detach`;
    every one downed after the test, whatever became of its profile."""
    started: list[Tunnel] = []

    def make(method: str) -> tuple[Path, Tunnel, list[int]]:
        profile = profile_for(method)
        up = cli("--profile", str(profile), "up", "--detach")
        assert up.returncode == 0 and "Tunnel up" in up.stdout, up.stdout + up.stderr
        tunnel = Tunnel(profile)
        started.append(tunnel)
        state = tunnel.state()
        assert state is not None
        pids = [state.supervisor_pid, *ssh_pids(tunnel.rundir.path)]
        assert len(pids) >= 3, pids  # the supervisor, the jump master and the main leg at least
        return profile, tunnel, pids

    yield make
    for tunnel in started:
        tunnel.down()


def assert_all_gone(tunnel: Tunnel, pids: list[int]) -> None:
    assert wait_for(lambda: not any(alive(p) for p in pids), 10), [p for p in pids if alive(p)]
    assert pids_naming(tunnel.rundir.path) == []
    assert not tunnel.is_running() and tunnel.state() is None


def test_down_and_status_of_a_broken_profile(centre: Any, detached: Any) -> None:
    profile, tunnel, pids = detached("local")
    text = profile.read_text()
    profile.write_text(text.replace("[gateway]\n", '[gateway]\nmethd = "hosts"\n', 1))

    status = cli("--profile", str(profile), "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr  # up: the tunnel runs on, found by the path
    report = json.loads(status.stdout)
    assert report["tunnel"]["state"] == "up" and report["tunnel"]["profile"] == str(profile)
    assert "gateway.methd" in report["tunnel"]["warnings"][0], report["tunnel"]["warnings"]
    assert {s["name"] for s in report["servers"]} == {"machine1", "machine2"}

    down = cli("--profile", str(profile), "down")
    assert down.returncode == 0 and down.stdout == "Tunnel down.\n", down.stdout + down.stderr
    lines = down.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecflow-remote: warning: ") and "gateway.methd" in lines[0], lines
    assert_all_gone(tunnel, pids)
    assert not tunnel.rundir.path.exists()

    # Nothing left to stop: the profile's problem is then the answer, as for any other command.
    again = cli("--profile", str(profile), "down")
    assert again.returncode == 1 and "gateway.methd" in again.stderr and "Traceback" not in again.stderr


def test_down_of_a_moved_profile(centre: Any, detached: Any) -> None:
    profile, tunnel, pids = detached("local")
    moved = profile.with_name("moved.toml")
    profile.rename(moved)
    try:
        # The new path never started a tunnel: nothing stopped, and the one that runs is named.
        other = cli("--profile", str(moved), "down")
        assert other.returncode == 0 and "No tunnel was running" in other.stdout, other.stdout + other.stderr
        assert str(profile) in other.stderr and "down --all" in other.stderr
        assert tunnel.is_running()

        down = cli("--profile", str(profile), "down")
        assert down.returncode == 0 and down.stdout == "Tunnel down.\n", down.stdout + down.stderr
        assert "no profile here" in down.stderr and len(down.stderr.splitlines()) == 1
        assert_all_gone(tunnel, pids)
    finally:
        moved.rename(profile)  # for the fixture's own down


def test_down_all_stops_every_tunnel(centre: Any, detached: Any, own_run_root: Path, tmp_path: Path) -> None:
    first, tunnel1, pids1 = detached("local")
    second, tunnel2, pids2 = detached("hosts")
    everything = cli("status", "--all", "--json")
    assert everything.returncode == 0, everything.stdout + everything.stderr
    reports = json.loads(everything.stdout)["tunnels"]
    assert sorted(r["tunnel"]["profile"] for r in reports) == sorted([str(first), str(second)])
    assert all(r["tunnel"]["state"] == "up" for r in reports)

    # No profile at all where `down --all` runs: it needs none.
    down = cli("--profile", str(tmp_path / "none.toml"), "down", "--all")
    assert down.returncode == 0, down.stdout + down.stderr
    assert sorted(down.stdout.splitlines()) == sorted([f"Tunnel down: {first}", f"Tunnel down: {second}"])
    assert_all_gone(tunnel1, pids1)
    assert_all_gone(tunnel2, pids2)
    assert [p for p in own_run_root.iterdir()] == []

    nothing = cli("status", "--all")
    assert nothing.returncode == 3 and "No tunnel is running." in nothing.stdout


def _foreground(profile: Path, **options: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "--profile", str(profile), "up"], text=True, **options)


def _owned(tunnel: Tunnel) -> list[int]:
    state = tunnel.state()
    assert state is not None and state.state == "up"
    pids = [state.supervisor_pid, *ssh_pids(tunnel.rundir.path)]
    assert len(pids) >= 3, pids
    return pids


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=lambda s: signal.Signals(s).name)
def test_foreground_up_ends_on_a_signal(centre: Any, profile_for: Any, sig: int) -> None:
    tunnel = Tunnel(profile_for("local"))
    proc = _foreground(tunnel.profile.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once every server answered
        assert first.startswith("Tunnel up"), first + proc.communicate(timeout=30)[1]
        pids = _owned(tunnel)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        tunnel.down()
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert "Traceback" not in err
    if sig == signal.SIGTERM:
        assert "Tunnel down." in out  # a hang-up's terminal is gone: nothing is written to it
    assert_all_gone(tunnel, pids)


def test_foreground_up_ends_with_its_terminal(centre: Any, profile_for: Any) -> None:
    """The terminal closed (its master side: the window): the kernel hangs up `up`, the session leader."""
    tunnel = Tunnel(profile_for("local"))
    master, slave = os.openpty()
    # setsid -c: `up` leads a session of its own with the pty as its controlling terminal, as in a terminal window.
    proc = subprocess.Popen(
        ["setsid", "-c", *CLI, "--profile", str(tunnel.profile.path), "up"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Tunnel up" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        assert b"Tunnel up" in seen, seen[-2000:]
        pids = _owned(tunnel)
        os.close(master)
        master = -1
        proc.wait(timeout=30)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
        tunnel.down()
    assert proc.returncode == 128 + signal.SIGHUP, proc.returncode
    assert_all_gone(tunnel, pids)


def test_foreground_up_killed_takes_its_tunnel(centre: Any, profile_for: Any) -> None:
    """kill -9 of a foreground `up` runs none of its code: the supervisor notices its owner's end by itself."""
    tunnel = Tunnel(profile_for("local"))
    proc = _foreground(tunnel.profile.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        assert first.startswith("Tunnel up"), first + proc.communicate(timeout=30)[1]
        pids = _owned(tunnel)
        proc.kill()
        proc.wait(timeout=10)
        assert_all_gone(tunnel, pids)
    finally:
        if proc.poll() is None:
            proc.kill()
        tunnel.down()


def test_detached_up_outlives_its_caller(centre: Any, profile_for: Any) -> None:
    """`up --detach` is unaffected: its tunnel is not owned by the `up` that started it."""
    profile = profile_for("local")
    tunnel = Tunnel(profile)
    try:
        up = cli("--profile", str(profile), "up", "--detach")
        assert up.returncode == 0, up.stderr
        time.sleep(1)
        assert tunnel.is_running() and tunnel.state() is not None
    finally:
        tunnel.down()


def test_open_tunnel_goes_with_its_program(centre: Any, profile_for: Any) -> None:
    """A script's `with open_tunnel(...)` ended by TERM (Python's default: no `finally` runs): the tunnel goes too."""
    tunnel = Tunnel(profile_for("local"))
    code = "import sys, time\nfrom ecflow_remote import open_tunnel\nwith open_tunnel(sys.argv[1]):\n"
    code += "    print('up', flush=True)\n    time.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(tunnel.profile.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        pids = _owned(tunnel)
        proc.terminate()
        assert proc.wait(10) == -signal.SIGTERM
        assert_all_gone(tunnel, pids)
    finally:
        if proc.poll() is None:
            proc.kill()
        tunnel.down()
