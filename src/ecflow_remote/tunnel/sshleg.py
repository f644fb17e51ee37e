"""One ssh process of a tunnel (the jump master or the main leg): started, watched, its messages, stopped."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ecflow_remote.clients.connect import accepts
from ecflow_remote.safefile import open_private

# Re-exported for tunnel/supervisor.py, whose line budget (500) is full while others change it: import it from
# ecflow_remote.unix when it is next edited.
from ecflow_remote.unix import die_with_parent as die_with_parent


@dataclass
class Leg:
    name: str  # "jump" or "main"
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    stdin_keep: IO[bytes] | None = None
    started: float = 0.0

    def start(self, rundir: Path, env: Mapping[str, str]) -> None:
        """Start ssh with `env`: ssh.ssh_environ(profile), never this process's own (it may hold passwords)."""
        self.log = rundir / f"ssh-{self.name}.log"
        argv = [self.argv[0], "-E", str(self.log), *self.argv[1:]]
        with open_private(self.log, "wb") as err:  # never through a link put in its place
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
                env=dict(env),
            )
        self.started = time.monotonic()
        # Held open and never written: the pty session sees no EOF and stays up.
        self.stdin_keep = self.proc.stdin

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def messages(self) -> str:
        try:
            return self.log.read_text(errors="replace") if self.log else ""
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        # ProxyCommand/ProxyJump start a second ssh in the same group: kill the whole group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.stdin_keep:
            with contextlib.suppress(OSError):
                self.stdin_keep.close()
        self.proc = None


def jump_outlived_main(legs: Sequence[Leg], jump_socket: Path) -> bool:
    """Whether the main leg was killed (a signal: the OOM killer, a user) while the jump master lives on: then only
    the main leg need start again, through it (one login, not two). A main leg that ended by itself may have lost
    the link the jump master is on too, and a master on a dead link would hold the next start up."""
    jump = next((leg for leg in legs if leg.name == "jump"), None)
    main = next((leg for leg in legs if leg.name == "main"), None)
    return (
        jump is not None
        and jump.alive()
        and main is not None
        and not main.alive()
        and (main.exit_code or 0) < 0
        and accepts(jump_socket)
    )
