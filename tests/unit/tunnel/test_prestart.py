"""The supervisor's head start: lock first, then the jump master, which the supervisor takes over (or stops)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ecflow_remote.profile.model import Gateway, Profile, Server, SshTarget
from ecflow_remote.transport import ssh
from ecflow_remote.tunnel.prestart import prestart
from ecflow_remote.tunnel.rundir import RunDir
from ecflow_remote.tunnel.supervisor import Supervisor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ssh dies with its parent through prctl")


def _profile(tmp_path: Path, jumps: int = 1) -> Profile:
    # An ssh that connects nowhere and lives until killed: its "connection" is a sleep.
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  ProxyCommand sleep 120\n")
    jump = tuple(SshTarget("u", f"jump{i}") for i in range(jumps))
    gw = Gateway(jump=jump, host=SshTarget("u", "machine1"), ssh_config=config)
    return Profile(tmp_path / "p.toml", gw, (Server("m1", "machine1", 4141),))


def test_the_jump_master_starts_under_the_lock_and_the_supervisor_takes_it_over(tmp_path: Path) -> None:
    profile, rundir = _profile(tmp_path), RunDir(tmp_path / "run")
    head = prestart(profile, rundir)
    assert head is not None and head.jump is not None
    try:
        assert head.jump.alive() and head.jump.argv == ssh.jump_master(profile, rundir.path)
        assert prestart(profile, rundir) is None  # a second supervisor starts nothing
        supervisor = Supervisor(profile, rundir)
        supervisor.early_jump = head.jump
        taken = supervisor._jump_leg(ssh.jump_master(profile, rundir.path))
        assert taken is head.jump and supervisor.legs == [head.jump] and supervisor.early_jump is None
    finally:
        head.release()
    assert not head.jump.alive()
    again = prestart(profile, rundir)  # the lock is free again
    assert again is not None
    again.release()


def test_a_prestart_jump_master_not_wanted_after_all_is_stopped(tmp_path: Path) -> None:
    profile, rundir = _profile(tmp_path), RunDir(tmp_path / "run")
    head = prestart(profile, rundir)
    assert head is not None and head.jump is not None
    try:
        supervisor = Supervisor(profile, rundir)
        supervisor.early_jump = head.jump
        # The hop refused a session: the legs are rebuilt without a jump master (ssh -J).
        assert supervisor._jump_leg(ssh.jump_master(profile, rundir.path, session=False)) is None
        assert not head.jump.alive() and supervisor.legs == []
    finally:
        head.release()


def test_without_exactly_one_jump_host_there_is_no_master_to_start(tmp_path: Path) -> None:
    for jumps in (0, 2):
        profile, rundir = _profile(tmp_path, jumps), RunDir(tmp_path / f"run{jumps}")
        head = prestart(profile, rundir)
        assert head is not None and head.jump is None
        head.release()
