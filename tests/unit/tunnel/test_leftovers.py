"""Only processes proven ours are killed after a crash (executable, owner, group, start time), the lock is tested
without being taken, and ssh never outlives a parent that died before PDEATHSIG was set."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecflow_remote.tunnel import procs
from ecflow_remote.tunnel.rundir import RunDir, wait_for
from ecflow_remote.tunnel.state import TunnelState
from ecflow_remote.unix import die_with_parent

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

# An ssh that connects nowhere and lives until killed: its "connection" is a sleep.
IDLE_SSH = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ProxyCommand=sleep 120", "-N", "nowhere"]
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    rundir = RunDir(tmp_path / "key")
    rundir.make()
    return rundir


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """spawn(argv, own_group=True) -> Popen; every process is killed when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], own_group: bool = True) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=own_group,
        )  # fmt: skip
        started.append(proc)
        # Wait until it is what it will be (the exec done), so the recorded start is this process's.
        wait_for(lambda: (info := procs.process_info(proc.pid)) is not None and info.exe == Path(argv[0]).name, 10)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def _record(run: RunDir, *pids: int, started: float | None = None) -> None:
    """What a supervisor writes: its ssh groups (and their start times)."""
    when = time.time() - 5 if started is None else started
    state = TunnelState("up", "local", "p.toml", supervisor_pid=999_999_999, pgids=list(pids), started=when)
    run.write_state(state)


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def test_a_recorded_ssh_of_ours_is_killed(run: RunDir, spawn: Spawn) -> None:
    ssh = spawn(IDLE_SSH)
    _record(run, ssh.pid)
    info = procs.process_info(ssh.pid)
    assert info is not None and (info.exe, info.uid, info.pgid) == ("ssh", os.getuid(), ssh.pid)
    assert json.loads(run.state_file.read_text())["pgid_starts"] == {str(ssh.pid): info.start}
    assert run.kill_leftovers() == [ssh.pid]
    assert wait_for(lambda: not _alive(ssh), 10)


def test_a_tail_of_the_log_survives(run: RunDir, spawn: Spawn) -> None:
    """The recorded pid now belongs to `tail -f …/ssh-main.log`: "ssh" and the run path are in its command line."""
    log = run.path / "ssh-main.log"
    log.write_text("")
    tail = spawn(["tail", "-f", str(log)])
    _record(run, tail.pid)
    assert run.kill_leftovers() == []
    time.sleep(0.2)
    assert _alive(tail)


def test_a_reused_pid_is_not_killed(run: RunDir, spawn: Spawn) -> None:
    """Same pid, an ssh of ours, but not the one recorded: its start time differs."""
    ssh = spawn(IDLE_SSH)
    _record(run, ssh.pid)
    data = json.loads(run.state_file.read_text())
    data["pgid_starts"][str(ssh.pid)] = str(int(data["pgid_starts"][str(ssh.pid)]) - 1000)
    run.state_file.write_text(json.dumps(data))
    assert run.kill_leftovers() == []
    assert _alive(ssh)


@pytest.mark.parametrize(("supervisor_started_ago", "killed"), [(60.0, True), (-60.0, False)])
def test_a_state_without_start_times_uses_the_supervisors_life(
    run: RunDir, spawn: Spawn, supervisor_started_ago: float, killed: bool
) -> None:
    """A state an older version wrote: the ssh must have started after its supervisor and before the last write."""
    ssh = spawn(IDLE_SSH)
    _record(run, ssh.pid, started=time.time() - supervisor_started_ago)
    data = json.loads(run.state_file.read_text())
    del data["pgid_starts"]
    run.state_file.write_text(json.dumps(data))
    assert run.kill_leftovers() == ([ssh.pid] if killed else [])


def test_an_ssh_that_does_not_lead_its_group_is_not_killed(run: RunDir, spawn: Spawn) -> None:
    """killpg of its pid would hit another group (here: the test run's own)."""
    ssh = spawn(IDLE_SSH, own_group=False)
    _record(run, ssh.pid)
    assert run.kill_leftovers() == []
    assert _alive(ssh)


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(), reason="needs root and setpriv")
def test_another_accounts_ssh_is_not_killed(run: RunDir, spawn: Spawn) -> None:
    ssh = spawn([*AS_NOBODY, *IDLE_SSH])
    assert wait_for(lambda: (i := procs.process_info(ssh.pid)) is not None and i.exe == "ssh", 10)
    _record(run, ssh.pid)
    assert run.kill_leftovers() == []
    assert _alive(ssh)


_HOLD_LOCK = """
import fcntl, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_is_locked_sees_the_lock_without_taking_it(run: RunDir, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not run.is_locked()  # no lock file: nothing running, and nothing made
    assert not run.lock_file.exists()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run.lock_file)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        taken: list[object] = []
        real_flock = fcntl.flock
        monkeypatch.setattr(fcntl, "flock", lambda *a: (taken.append(a), real_flock(*a))[1])
        assert run.is_locked()
        assert taken == []  # a supervisor starting now would still get the lock
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout:
            holder.stdout.close()
    assert not run.is_locked()
    lock = run.try_lock()
    assert lock is not None
    try:
        assert run.is_locked()
    finally:
        lock.close()


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    """die_with_parent(expected parent): when the parent is not the one expected (it died between fork and
    prctl, and the child was re-parented), no PDEATHSIG will ever come, so the child must not go on."""
    orphan = subprocess.Popen(["sleep", "30"], preexec_fn=functools.partial(die_with_parent, 1))
    assert orphan.wait(10) == 1
    child = subprocess.Popen(["sleep", "30"], preexec_fn=functools.partial(die_with_parent, os.getpid()))
    try:
        time.sleep(0.2)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
