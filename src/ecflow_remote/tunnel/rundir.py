"""Where a running tunnel records itself: its private directory, its lock, and state.json."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ecflow_remote.errors import UnsafeDirectory
from ecflow_remote.safefile import write_atomic
from ecflow_remote.tunnel.state import TunnelState


def runtime_root() -> Path:
    """A private (0700) directory with short paths: ssh control sockets live here (sun_path is ~104 bytes)."""
    override = os.environ.get("ECFLOW_REMOTE_RUNTIME_DIR")
    if override:
        root = Path(override)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        root = Path(os.environ["XDG_RUNTIME_DIR"]) / "ecflow-remote"
    else:
        root = Path(tempfile.gettempdir()) / f"ecflow-remote-{os.getuid()}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = root.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UnsafeDirectory(unsafe_root_message(root, st.st_uid, st.st_mode))
    return root


def unsafe_root_message(root: Path, owner: int, mode: int) -> str:
    """What to do about a run directory that is not ours alone: chmod cannot make another account's ours."""
    if owner != os.getuid():
        return (
            f"the run directory {root} belongs to another account (uid {owner}), so it cannot hold your tunnel: "
            "point $ECFLOW_REMOTE_RUNTIME_DIR (or $XDG_RUNTIME_DIR) at a directory of your own, "
            "e.g. export ECFLOW_REMOTE_RUNTIME_DIR=~/.ecflow-remote-run"
        )
    return f"the run directory {root} is open to other accounts (mode {mode & 0o777:o}): chmod 700 {root}"


@dataclass
class RunDir:
    """One profile's running tunnel: lock, state.json, ssh logs, control sockets, generated files."""

    path: Path

    @classmethod
    def for_profile(cls, profile_path: Path) -> RunDir:
        key = hashlib.sha256(str(profile_path.resolve()).encode()).hexdigest()[:10]
        return cls(runtime_root() / key)  # made by `up`, removed by `down`

    @property
    def lock_file(self) -> Path:
        return self.path / "lock"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def log_file(self) -> Path:
        return self.path / "supervisor.log"

    def read_state(self) -> TunnelState | None:
        """The supervisor's last word; None when there is none (or it is not a state, e.g. from another version)."""
        try:
            return TunnelState.from_json(json.loads(self.state_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def write_state(self, state: TunnelState) -> None:
        write_atomic(self.state_file, json.dumps(state.to_json(), indent=1), mode=0o600)

    def try_lock(self) -> TextIO | None:
        """The lock, held for the supervisor's life; None when another supervisor holds it. The kernel frees it
        when its holder dies, even by kill -9, so a lock is never stale."""
        self.path.mkdir(mode=0o700, exist_ok=True)
        f = open(self.lock_file, "a+")  # noqa: SIM115 (held open for the process's life)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        return f

    def is_locked(self) -> bool:
        if not self.lock_file.exists():
            return False  # asking must not recreate what `down` removed
        f = self.try_lock()
        if f is None:
            return True
        f.close()
        return False

    def kill_leftovers(self) -> list[int]:
        """Process groups a dead supervisor left (ssh killed with it otherwise lives on and holds the ports)."""
        state = self.read_state()
        killed = []
        for pgid in state.pgids if state else []:
            if _is_ours(pgid, self.path):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                    killed.append(pgid)
        return killed

    def clean_files(self, keep: tuple[str, ...] = ()) -> None:
        if not self.path.is_dir():
            return
        for child in self.path.iterdir():
            if child.name != "lock" and child.name not in keep:
                with contextlib.suppress(OSError):
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)  # ecflow_ui's private config dir, left by a killed `ui`
                    else:
                        child.unlink()

    def remove(self) -> None:
        """Everything, the directory included: `down` leaves nothing behind."""
        self.clean_files()
        with contextlib.suppress(OSError):
            self.lock_file.unlink()
            self.path.rmdir()


def _is_ours(pid: int, run_path: Path) -> bool:
    """Only kill a process that is ssh started for this run dir: a recycled pid must never be hit."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        # No /proc (macOS): trust the recorded group only if it still exists and `ps` says ssh.
        import subprocess

        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True).stdout
        return "ssh" in out and str(run_path) in out
    text = b" ".join(cmdline).decode(errors="replace")
    return "ssh" in text and str(run_path) in text


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
