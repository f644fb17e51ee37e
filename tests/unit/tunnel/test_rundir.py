"""The run directory is never followed through a link nor taken from another account: checked with lstat, its
files opened without following links, and each refusal is one line saying what to do."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ecflow_remote.errors import EcflowRemoteError, RunDirError
from ecflow_remote.safefile import open_private, write_private
from ecflow_remote.tunnel.rundir import RunDir, runtime_root
from ecflow_remote.tunnel.sshleg import Leg
from ecflow_remote.tunnel.state import TunnelState

PRECIOUS = "the victim's own data\n"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives a directory to another uid: needs root")


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default run root, /tmp/ecflow-remote-<uid>, with /tmp moved to a directory of this test."""
    monkeypatch.delenv("ECFLOW_REMOTE_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared / f"ecflow-remote-{os.getuid()}"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A private directory of the user's with a file in it: what a link planted by another account points at."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "ssh-main.log").write_text(PRECIOUS)
    (home / "supervisor.log").write_text(PRECIOUS)
    return home


def _symlink_to_victim(root: Path, victim: Path) -> None:
    root.symlink_to(victim)


def _dangling_symlink(root: Path, victim: Path) -> None:
    root.symlink_to(victim / "not-yet")


def _file(root: Path, victim: Path) -> None:
    root.write_text("x")


def _mode(mode: int) -> Callable[[Path, Path], None]:
    def make(root: Path, victim: Path) -> None:
        root.mkdir()
        os.chmod(root, mode)

    return make


def _other_account(root: Path, victim: Path) -> None:
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)


BAD_ROOTS = [
    pytest.param(_symlink_to_victim, "is a symbolic link, which ecflow-remote never follows", id="link-to-victim"),
    pytest.param(_dangling_symlink, "is a symbolic link", id="dangling-link"),
    pytest.param(_file, "is not a directory: remove it", id="a-file"),
    pytest.param(_mode(0o777), r"writable by other accounts.*rm -r", id="world-writable"),
    pytest.param(_mode(0o770), "writable by other accounts", id="group-writable"),
    pytest.param(_mode(0o755), "must be private: chmod 700", id="readable-by-others"),
    pytest.param(_other_account, r"belongs to another account \(nobody\)", marks=needs_root, id="taken"),
]


@pytest.mark.parametrize(("prepare", "words"), BAD_ROOTS)
def test_a_root_that_is_not_ours_and_private_is_refused_in_one_line(
    tmp_root: Path, victim: Path, prepare: Callable[[Path, Path], None], words: str
) -> None:
    prepare(tmp_root, victim)
    before = sorted(p.name for p in victim.iterdir())
    with pytest.raises(RunDirError, match=words) as info:
        runtime_root()
    message = str(info.value)
    assert str(tmp_root) in message and "\n" not in message
    assert isinstance(info.value, EcflowRemoteError)
    # Nothing was made or changed through the link.
    assert sorted(p.name for p in victim.iterdir()) == before
    assert (victim / "ssh-main.log").read_text() == PRECIOUS


def test_a_missing_root_is_made_private(tmp_root: Path) -> None:
    assert runtime_root() == tmp_root
    st = os.lstat(tmp_root)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
    assert runtime_root() == tmp_root  # and taken as it is the next time


def test_a_root_that_cannot_be_made_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ECFLOW_REMOTE_RUNTIME_DIR", str(blocker / "run"))
    with pytest.raises(RunDirError, match=r"cannot make the run directory .*ECFLOW_REMOTE_RUNTIME_DIR"):
        runtime_root()


def test_a_profile_dir_that_is_a_link_is_refused(tmp_path: Path, victim: Path) -> None:
    run = RunDir(tmp_path / "key")
    run.path.symlink_to(victim)
    with pytest.raises(RunDirError, match="symbolic link"):
        run.try_lock()
    assert not (victim / "lock").exists()


def _leg_log(run: RunDir) -> None:
    Leg("main", ["/bin/true"]).start(run.path, {})


def _supervisor_log(run: RunDir) -> None:
    with open_private(run.log_file, "ab") as f:
        f.write(b"started\n")


def _lock(run: RunDir) -> None:
    lock = run.try_lock()
    assert lock is not None
    lock.close()


def _state(run: RunDir) -> None:
    run.write_state(TunnelState(state="up", method="local", profile="p.toml", supervisor_pid=1))


def _hosts(run: RunDir) -> None:
    write_private(run.path / "hosts", "127.0.0.1 x\n", mode=0o644)


# (what writes into the run directory, the name it writes): a link swapped in at that name must not be followed.
WRITERS = [
    pytest.param(_leg_log, "ssh-main.log", id="ssh-log"),
    pytest.param(_supervisor_log, "supervisor.log", id="supervisor-log"),
    pytest.param(_lock, "lock", id="lock"),
    pytest.param(_state, "state.json", id="state"),
    pytest.param(_hosts, "hosts", id="hosts"),
]


@pytest.mark.parametrize(("write", "name"), WRITERS)
def test_a_link_swapped_in_is_never_written_through(
    tmp_path: Path, victim: Path, write: Callable[[RunDir], None], name: str
) -> None:
    run = RunDir(tmp_path / "key")
    run.make()
    target = victim / "ssh-main.log"
    (run.path / name).symlink_to(target)
    with contextlib.suppress(OSError):  # refusing (ELOOP) is as good as replacing the link; following it is not
        write(run)
    assert target.read_text() == PRECIOUS
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in victim.iterdir()) == ["ssh-main.log", "supervisor.log"]


@pytest.mark.parametrize("prepare", [p.values[0] for p in BAD_ROOTS if p.id != "readable-by-others"])
def test_a_root_the_user_named_is_never_to_be_removed(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch, prepare: Callable[[Path, Path], None]
) -> None:
    # ECFLOW_REMOTE_RUNTIME_DIR may name anything (/tmp, /etc/passwd, a home): the way out is another directory,
    # never `rm` of what it names.
    if prepare is _other_account and os.geteuid() != 0:
        pytest.skip("gives a directory to another uid: needs root")
    named = tmp_path / "named"
    prepare(named, victim)
    monkeypatch.setenv("ECFLOW_REMOTE_RUNTIME_DIR", str(named))
    with pytest.raises(RunDirError) as info:
        runtime_root()
    message = str(info.value)
    assert "rm " not in message and "remove" not in message, message
    assert "point ECFLOW_REMOTE_RUNTIME_DIR, which names it, at a private directory" in message


def test_old_failed_starts_age_out(tmp_path: Path) -> None:
    """A failed start's logs (kept for the user to read) go after a day, at any profile's `up`: a profile moved or
    never started again leaves nothing for ever. A recent one, a held lock, or anything more than those logs (a
    crashed tunnel's state, to clean up after) stays."""
    import time

    from ecflow_remote.tunnel.rundir import FAILED_START_KEPT, FAILED_START_LOGS, remove_old_failed_starts

    root = tmp_path / "run"
    root.mkdir(mode=0o700)

    def failed_start(name: str, age: float, *extra: str) -> RunDir:
        run = RunDir(root / name)
        run.make()
        for file in ("lock", *FAILED_START_LOGS, *extra):
            path = run.path / file
            path.write_text("ssh: Could not resolve hostname jump\n")
            os.utime(path, (time.time() - age, time.time() - age))
        return run

    old = failed_start("0123456789", FAILED_START_KEPT + 60)
    recent = failed_start("aaaaaaaaaa", FAILED_START_KEPT - 600)
    crashed = failed_start("bbbbbbbbbb", FAILED_START_KEPT + 60, "state.json")
    starting = failed_start("cccccccccc", FAILED_START_KEPT + 60)
    not_a_run_dir = failed_start("something", FAILED_START_KEPT + 60)
    held = starting.try_lock()
    assert held is not None
    try:
        assert remove_old_failed_starts(root) == [old.path]
    finally:
        held.close()
    assert not old.path.exists()
    assert all((run.path / "ssh-main.log").is_file() for run in (recent, crashed, starting, not_a_run_dir))
    assert RunDir.for_profile(tmp_path / "p.toml").path.name.isalnum()  # the form the sweep looks for
    assert len(RunDir.for_profile(tmp_path / "p.toml").path.name) == len(old.path.name)
    assert remove_old_failed_starts(root / "missing") == []  # no run root yet: nothing to do, no error


def test_a_routine_write_that_changes_only_latencies_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A health round's write (routine) is skipped while only latencies and the round count change; a change of
    anything else, any other write, or ROUTINE_EVERY seconds write it."""
    from ecflow_remote.plan import Endpoint
    from ecflow_remote.tunnel import rundir
    from ecflow_remote.tunnel.state import Check

    run = RunDir(tmp_path / "key")
    run.make()
    e = Endpoint("server", "m", "m.centre", 4141, "127.0.0.1", 4141)
    state = TunnelState("up", "local", "p.toml", 1, checks=[Check(e, True, 1.0, "5.9.2")], found_rounds=1)
    run.write_state(state)

    def latency() -> float | None:
        read = run.read_state()
        assert read is not None
        return read.checks[0].latency_ms

    state = replace(state, checks=[Check(e, True, 2.0, "5.9.2")], found_rounds=2)
    run.write_state(state, routine=True)
    assert latency() == 1.0
    run.write_state(state)
    assert latency() == 2.0
    state = replace(state, checks=[Check(e, False, error="no answer (timed out)")])
    run.write_state(state, routine=True)
    assert latency() is None
    state = replace(state, checks=[Check(e, True, 3.0, "5.9.2")])
    run.write_state(state)
    state = replace(state, checks=[Check(e, True, 4.0, "5.9.2")])
    monkeypatch.setattr(rundir, "ROUTINE_EVERY", 0.0)
    run.write_state(state, routine=True)
    assert latency() == 4.0
