"""The tunnels of this user as the run directory records them, whatever their profiles say now: found, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from ecflow_remote.tunnel import files
from ecflow_remote.tunnel.rundir import FAILED_START_LOGS, RunDir, is_key, runtime_root, wait_for
from ecflow_remote.tunnel.state import TunnelState


@dataclass(frozen=True)
class Running:
    """One running tunnel: its run directory and the supervisor's last word (None for a moment at its start)."""

    rundir: RunDir
    state: TunnelState | None

    @property
    def profile(self) -> str:
        """The profile the tunnel was started from, as the supervisor recorded it (it may be gone or changed)."""
        return self.state.profile if self.state is not None else "?"


def rundirs() -> list[RunDir]:
    """Every tunnel directory of this user, running or left by a supervisor that was killed. Only those named as
    RunDir.for_profile names them: the root may be a directory the user chose, holding files of their own."""
    root = runtime_root()
    found = []
    for child in sorted(root.iterdir()):
        if is_key(child.name) and child.is_dir() and not child.is_symlink():
            found.append(RunDir(child))
    return found


def running() -> list[Running]:
    """The tunnels running now, each with its supervisor's last state."""
    return [Running(r, r.read_state()) for r in rundirs() if r.is_locked()]


def for_profile(path: Path) -> Running | None:
    """The tunnel running for the profile at `path` (keyed by the path, so a broken or moved profile's too)."""
    rundir = RunDir.for_profile(path)
    return Running(rundir, rundir.read_state()) if rundir.is_locked() else None


def stop(rundir: RunDir, timeout: float = 10.0, *, keep_logs: bool = False) -> bool:
    """Stop the supervisor and every ssh it started, undo what it changed, remove its run directory; True if one
    was running. keep_logs: leave the logs of a failed start (the next start or `down` removes them)."""
    state = rundir.read_state()
    was_running = rundir.is_locked()
    if was_running and state is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.supervisor_pid, signal.SIGTERM)
        wait_for(lambda: not rundir.is_locked(), timeout)
    # After a kill -9 of the supervisor: its ssh groups, files and state are still to be cleared.
    rundir.kill_leftovers()
    if not rundir.is_locked():
        if keep_logs:
            rundir.clean_files(keep=FAILED_START_LOGS)
        else:
            rundir.remove()
        # Raises, with the sudo command, if it cannot.
        files.remove_system_hosts(rundir.path.name, state.files if state else None)
    return was_running


def stop_all(timeout: float = 10.0) -> list[Running]:
    """Stop every tunnel of this user (and clear what killed ones left); those that were running."""
    everything = rundirs()
    was = [Running(r, r.read_state()) for r in everything if r.is_locked()]
    # Every supervisor told at once, so that they stop side by side; then stop() clears up after each (and tells
    # again one that did not stop: never twice at once, which could end a supervisor as it exits, untidily).
    for r in was:
        if r.state is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.state.supervisor_pid, signal.SIGTERM)
    for r in was:
        wait_for(lambda r=r: not r.rundir.is_locked(), timeout)
    for rundir in everything:
        stop(rundir, timeout)
    return was
