"""The supervisor process's first moments: its lock taken and the first hop's ssh started before the rest loads."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import IO, Any

from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh
from ecflow_remote.tunnel.rundir import RunDir
from ecflow_remote.tunnel.sshleg import Leg


@dataclass
class Prestart:
    """What the supervisor holds before its own start: the lock, and the jump master, already authenticating."""

    lock: IO[Any]
    jump: Leg | None

    def release(self) -> None:
        """For a supervisor that never took over (it failed to load): nothing of it may stay."""
        if self.jump is not None:
            self.jump.stop()
        with contextlib.suppress(OSError):
            self.lock.close()


def prestart(profile: Profile, rundir: RunDir) -> Prestart | None:
    """Lock, clear a dead supervisor's leftovers, start the jump master; None when another supervisor holds the
    lock. The jump host's login takes about half a second on a home link, as long as the supervisor's loading and
    preparing: they overlap it instead of coming before it."""
    lock = rundir.try_lock()
    if lock is None:
        return None
    rundir.kill_leftovers()
    rundir.clean_files(keep=("supervisor.log",))  # our own stdout: `up` opened it afresh
    argv = ssh.jump_master(profile, rundir.path)
    jump = None
    if argv is not None:
        jump = Leg("jump", argv)
        jump.start(rundir.path, ssh.ssh_environ(profile))  # before any password is read: from the profile
    return Prestart(lock, jump)
