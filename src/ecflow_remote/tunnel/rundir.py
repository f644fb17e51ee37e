"""Where a running tunnel records itself: its private directory, its lock, and state.json."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ecflow_remote.errors import RunDirError
from ecflow_remote.safefile import open_private, write_atomic
from ecflow_remote.tunnel import procs
from ecflow_remote.tunnel.state import TunnelState

# state.json's record of each ssh group leader's start time, beside TunnelState's own fields.
_STARTS = "pgid_starts"
# What a failed start leaves for the user to read (`up`'s message names them): the next start of that profile or
# its `down` removes them, and any `up` those a day old (a profile moved or never started again leaves no trace).
FAILED_START_LOGS = ("ssh-jump.log", "ssh-main.log", "supervisor.log")
FAILED_START_KEPT = 24 * 3600.0
ROUTINE_EVERY = 60.0  # seconds: how old state.json's latencies may get while nothing else changes
_KEY_LENGTH = 10  # hex digits of a profile's run directory name


def runtime_root() -> Path:
    """A private (0700) directory with short paths: ssh control sockets live here (sun_path is ~104 bytes)."""
    override = os.environ.get("ECFLOW_REMOTE_RUNTIME_DIR")
    if override:
        root = Path(override)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        root = Path(os.environ["XDG_RUNTIME_DIR"]) / "ecflow-remote"
    else:
        # Shared /tmp: the name is predictable, so another account may have taken it; private_dir then refuses it
        # with what to do (a fallback name would have to be found again by every later command, from a place
        # another account cannot change: setting one of the variables above is that place).
        root = Path(tempfile.gettempdir()) / f"ecflow-remote-{os.getuid()}"
    return private_dir(root, parents=True, chosen=bool(override))


_WHAT_TO_DO = (
    "set ECFLOW_REMOTE_RUNTIME_DIR (or XDG_RUNTIME_DIR) to a private directory of yours, e.g. "
    "`export ECFLOW_REMOTE_RUNTIME_DIR=~/.ecflow-remote-run`"
)


def private_dir(path: Path, *, parents: bool = False, chosen: bool = False) -> Path:
    """`path` as a real directory of this user, 0700, made if missing; RunDirError when it is anything else.

    Checked on the directory itself (lstat, and an O_NOFOLLOW open), never through a symbolic link: a link's
    target can be swapped by whoever owns the link between the check and each later use. `chosen`: the user named
    it (ECFLOW_REMOTE_RUNTIME_DIR), so it may be anything (/tmp, their home): never advise removing it."""
    remove = "" if chosen else f"remove it (rm {path}) or "
    what_to_do = (
        "point ECFLOW_REMOTE_RUNTIME_DIR, which names it, at a private directory of yours instead, e.g. "
        "`export ECFLOW_REMOTE_RUNTIME_DIR=~/.ecflow-remote-run`"
        if chosen
        else _WHAT_TO_DO
    )
    try:
        if parents:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        st = os.lstat(path)
    except OSError as e:
        raise RunDirError(f"cannot make the run directory {path} ({e.strerror}): {_WHAT_TO_DO}") from None
    if stat.S_ISLNK(st.st_mode):
        raise RunDirError(
            f"the run directory {path} is a symbolic link, which ecflow-remote never follows (whoever owns it can "
            f"point it elsewhere): {remove}{what_to_do}"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise RunDirError(f"the run directory {path} is not a directory: {remove}{what_to_do}")
    if st.st_uid != os.getuid():
        raise RunDirError(
            f"the run directory {path} belongs to another account ({_owner(st.st_uid)}), so ecflow-remote cannot "
            f"keep its files there: {what_to_do}" + ("" if chosen else f", or ask an administrator to remove {path}")
        )
    if st.st_mode & 0o022:
        fix = what_to_do if chosen else f"remove it (rm -r {path}) and ecflow-remote makes it anew, private"
        raise RunDirError(
            f"the run directory {path} is writable by other accounts, so nothing in it can be trusted: {fix}"
        )
    if st.st_mode & 0o077:
        other = f", or {what_to_do}" if chosen else ""
        raise RunDirError(f"the run directory {path} must be private: chmod 700 {path}{other}")
    return path


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@dataclass
class RunDir:
    """One profile's running tunnel: lock, state.json, ssh logs, control sockets, generated files."""

    path: Path
    _starts: dict[int, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    # What the last write held (latencies left out) and when: write_state(routine=True) skips a needless one.
    _written: tuple[dict[str, Any] | None, float] = field(default=(None, 0.0), init=False, repr=False, compare=False)

    @classmethod
    def for_profile(cls, profile_path: Path) -> RunDir:
        key = hashlib.sha256(str(profile_path.resolve()).encode()).hexdigest()[:_KEY_LENGTH]
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

    def write_state(self, state: TunnelState, routine: bool = False) -> None:
        """state.json anew. `routine` (a health round): not written when all it would change is the checks'
        latencies, the finder's round count and the certificate's seconds left (valid_until stays), unless the
        file is ROUTINE_EVERY seconds old. An idle tunnel's rounds then write no file each; `status` shows
        latencies up to that old, every other change at once."""
        data = state.to_json()
        key = {
            **data,
            "checks": [{**c, "latency_ms": None} for c in data["checks"]],
            "found_rounds": state.found_rounds > 0,
            "certificate": {**(data["certificate"] or {}), "seconds_left": None},
        }
        now = time.monotonic()
        if routine and key == self._written[0] and now < self._written[1] + ROUTINE_EVERY:
            return
        self._written = (key, now)
        # Each ssh group leader's start time beside its pid: after a crash, only a process with both is killed.
        # Looked up once per pid (the state is written often; without /proc it costs a `ps`).
        for pgid in state.pgids:
            if pgid not in self._starts and (info := procs.process_info(pgid)) is not None:
                self._starts[pgid] = info.start
        data[_STARTS] = {str(pgid): self._starts[pgid] for pgid in state.pgids if pgid in self._starts}
        # Not synced to the disk: rewritten at every health round all day long, and meaningless after a reboot.
        write_atomic(self.state_file, json.dumps(data, indent=1), mode=0o600, durable=False)

    def make(self) -> None:
        """The directory itself, checked as runtime_root is (a real directory of ours, 0700)."""
        private_dir(self.path)

    def try_lock(self) -> IO[Any] | None:
        """The lock, held for the supervisor's life; None when another supervisor holds it. The kernel frees it
        when its holder dies, even by kill -9, so a lock is never stale."""
        self.make()
        f = open_private(self.lock_file, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        return f

    def is_locked(self) -> bool:
        """Whether a supervisor holds the lock, asked without taking it (a `status` at the moment a supervisor
        starts must not make that supervisor think another one runs)."""
        if not os.path.lexists(self.lock_file):
            return False  # asking must not recreate what `down` removed
        holders = procs.flock_holders(self.lock_file)
        if holders is not None:
            return bool(holders)
        # No /proc/locks (macOS): the recorded supervisor, if it still runs.
        state = self.read_state()
        if state is None:
            return False
        try:
            os.kill(state.supervisor_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # a reused pid of another account's
        return True

    def kill_leftovers(self) -> list[int]:
        """Process groups a dead supervisor left (ssh killed with it otherwise lives on and holds the ports).

        Only groups proven to be the ssh recorded: the leader's executable is ssh, it is ours, it leads its group,
        and it started when the recorded one did (or, for a state written without start times, while that
        supervisor ran). Never a command line: anyone's `tail -f …/ssh-main.log` has "ssh" and the run path."""
        state = self.read_state()
        if state is None:
            return []
        try:
            recorded = json.loads(self.state_file.read_text()).get(_STARTS) or {}
            written = os.lstat(self.state_file).st_mtime
        except (OSError, ValueError, AttributeError):
            return []
        killed = []
        for pgid in state.pgids:
            info = procs.process_info(pgid)
            if info is None or info.exe != "ssh" or info.uid != os.getuid() or info.pgid != pgid:
                continue
            if not _same_start(info, recorded.get(str(pgid)), state.started, written):
                continue
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


def remove_old_failed_starts(root: Path, older_than: float = FAILED_START_KEPT) -> list[Path]:
    """Remove the run directories under `root` that hold nothing but a failed start's logs (no tunnel, no state
    of a crashed one to clean up after) and were last written `older_than` seconds ago or more; the ones removed.
    A directory whose lock is held (a start at this moment) is left."""
    removed: list[Path] = []
    allowed = {"lock", *FAILED_START_LOGS}
    with contextlib.suppress(OSError):
        for child in root.iterdir():
            with contextlib.suppress(OSError, RunDirError):
                if child.is_symlink() or not child.is_dir():
                    continue
                entries = list(child.iterdir())
                # A profile's run directory (for_profile's key), with some log and nothing else of a tunnel's.
                if not is_key(child.name) or any(e.name not in allowed for e in entries):
                    continue
                if not any(e.name in FAILED_START_LOGS for e in entries):
                    continue
                if time.time() - max((os.lstat(e).st_mtime for e in entries), default=0.0) < older_than:
                    continue
                run = RunDir(child)
                lock = run.try_lock()
                if lock is None:
                    continue
                try:
                    run.remove()
                finally:
                    lock.close()
                removed.append(child)
    return removed


def is_key(name: str) -> bool:
    """Whether `name` is a profile's run directory name (for_profile's key)."""
    return len(name) == _KEY_LENGTH and all(c in "0123456789abcdef" for c in name)


def _same_start(info: procs.ProcessInfo, recorded: object, started: float, written: float) -> bool:
    if recorded is not None:
        return info.start == recorded
    # A state from before start times were recorded: the process must have started between the supervisor's
    # start and the state's last write (a pid reused later fails this).
    boot = _boot_time()
    if boot is None or not info.start.isdigit():
        return False
    began = boot + int(info.start) / os.sysconf("SC_CLK_TCK")
    return started - 2 <= began <= written + 2


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
