"""system_hosts: where launched programs get no private hosts view, the supervisor manages a marked block in the
system hosts file. Here on Linux, with the view switched off and a temporary file in place of /etc/hosts (both
through test-only environment variables, inherited by the supervisor)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.hosts import system as systemhosts
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

ORIGINAL = "127.0.0.1\tlocalhost\n10.0.0.5\tprinter\n"


@pytest.fixture
def system_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "etc" / "hosts"
    path.parent.mkdir()
    path.write_text(ORIGINAL)
    monkeypatch.setenv(systemhosts.PATH_ENV, str(path))
    monkeypatch.setenv("ECFLOW_REMOTE_PRIVATE_VIEW", "0")
    yield path


def _block(path: Path, tunnel: Tunnel) -> str:
    text = path.read_text()
    begin = text.find(systemhosts.begin_marker(tunnel.rundir.path.name))
    return text[begin:] if begin >= 0 else ""


def test_up_installs_the_block_and_down_removes_it(
    system_hosts: Path, tunnel_up: Callable[..., Any], centre: Any
) -> None:
    tunnel = tunnel_up("hosts", system_hosts=True)
    block = _block(system_hosts, tunnel)
    plan = tunnel.plan()
    for name, address in plan.hosts.items():
        assert f"{address}\t{name}\n" in block
    assert system_hosts.read_text().startswith(ORIGINAL)
    assert system_hosts.with_name("hosts.ecflow-remote.bak").read_text() == ORIGINAL
    assert tunnel.files().system_hosts == str(system_hosts)
    # run works with the system file's block and no private view (ECF_HOST/ECF_PORT: the names resolve only
    # through the real /etc/hosts, which this test leaves alone).
    run = [sys.executable, "-m", "ecflow_remote", "--profile", str(tunnel.profile.path), "run"]
    proc = subprocess.run(
        [*run, "--server", "machine1", "--", "ecflow_client", "--ping"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    tunnel.down()
    assert system_hosts.read_text() == ORIGINAL


def test_without_opt_in_the_system_file_is_never_touched(
    system_hosts: Path, tunnel_up: Callable[..., Any], centre: Any
) -> None:
    tunnel = tunnel_up("hosts")
    assert system_hosts.read_text() == ORIGINAL
    proc = subprocess.run(
        [sys.executable, "-m", "ecflow_remote", "--profile", str(tunnel.profile.path), "run", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "system_hosts = true" in proc.stderr and "local method" in proc.stderr
    tunnel.down()
    assert not system_hosts.with_name("hosts.ecflow-remote.bak").exists()


def test_kill_9_of_the_supervisor_then_down_removes_the_block(
    system_hosts: Path, tunnel_up: Callable[..., Any], centre: Any
) -> None:
    tunnel = tunnel_up("hosts", system_hosts=True)
    tag = tunnel.rundir.path.name
    pid = tunnel.state().supervisor_pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not tunnel.is_running(), 10)
    assert systemhosts.has_block(system_hosts, tag)  # a kill -9 cannot clean up
    tunnel.down()
    assert system_hosts.read_text() == ORIGINAL


def test_kill_9_then_up_replaces_the_stale_block(
    system_hosts: Path, tunnel_up: Callable[..., Any], centre: Any
) -> None:
    tunnel = tunnel_up("hosts", system_hosts=True)
    os.kill(tunnel.state().supervisor_pid, signal.SIGKILL)
    assert wait_for(lambda: not tunnel.is_running(), 10)
    tunnel.up()
    assert system_hosts.read_text().count(systemhosts.begin_marker(tunnel.rundir.path.name)) == 1
    tunnel.down()
    assert system_hosts.read_text() == ORIGINAL
