"""Tunnels found by the run directory alone: `down` of a broken profile, `down --all`, `status --all`, with stand-ins
for supervisors (a process holding the lock, its state.json, ending on TERM as the real one does)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.unit.samples import LOCAL_PROFILE

from ecflow_remote.cli.main import main
from ecflow_remote.tunnel import running
from ecflow_remote.tunnel.rundir import RunDir, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/locks")

# A supervisor as `down` meets it: holds the lock, has written its state, stops on TERM.
SUPERVISOR = """
import fcntl, json, os, signal, sys, time
lock = open(os.path.join(sys.argv[1], "lock"), "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
state = {"state": "up", "method": "local", "profile": sys.argv[2], "supervisor_pid": os.getpid()}
with open(os.path.join(sys.argv[1], "state.json"), "w") as f:
    f.write(json.dumps(state))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
while True:
    time.sleep(1)
"""
Start = Callable[[Path], tuple[RunDir, subprocess.Popen[str]]]


@pytest.fixture
def root(own_run_root: Path) -> Path:
    return own_run_root


@pytest.fixture
def supervisor(root: Path) -> Iterator[Start]:
    """supervisor(profile_path) -> (its RunDir, the stand-in's process); every one killed after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(profile: Path) -> tuple[RunDir, subprocess.Popen[str]]:
        rundir = RunDir.for_profile(profile)
        rundir.make()
        proc = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR, str(rundir.path), str(profile)], stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        assert rundir.is_locked()
        return rundir, proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def test_only_tunnel_directories_are_listed(root: Path) -> None:
    """The root may be a directory the user chose: what is not a tunnel's is never listed, so never removed."""
    key = root / "0123456789"
    key.mkdir(mode=0o700)
    (root / "notes").mkdir()
    (root / "abcdef0123").write_text("a file named like a key\n")
    (root / "abcdef4567").symlink_to(key)
    (root / "ABCDEF0123").mkdir()
    assert [r.path for r in running.rundirs()] == [key]
    assert running.running() == []


def test_stop_all_stops_every_tunnel_and_clears_leftovers(root: Path, tmp_path: Path, supervisor: Start) -> None:
    _, first = supervisor(tmp_path / "one.toml")
    _, second = supervisor(tmp_path / "two.toml")
    left = RunDir(root / "fedcba9876")  # a killed supervisor's directory: nothing runs, its files remain
    left.make()
    (left.path / "lock").touch()
    (left.path / "supervisor.log").write_text("killed\n")
    (root / "notes").mkdir()

    stopped = running.stop_all(timeout=10)
    assert sorted(r.profile for r in stopped) == [str(tmp_path / "one.toml"), str(tmp_path / "two.toml")]
    assert first.wait(10) == 0 and second.wait(10) == 0  # each ended by its TERM
    assert sorted(p.name for p in root.iterdir()) == ["notes"]
    assert running.stop_all() == []


def test_down_of_a_broken_profile_stops_its_tunnel(tmp_path: Path, supervisor: Start) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(LOCAL_PROFILE.replace("[gateway]\n", '[gateway]\nmethd = "local"\n', 1))
    rundir, proc = supervisor(profile)
    result = CliRunner().invoke(main, ["--profile", str(profile), "down"])
    assert result.exit_code == 0 and result.stdout == "Tunnel down.\n", result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecflow-remote: warning: ") and "gateway.methd" in lines[0]
    assert proc.wait(10) == 0 and not rundir.path.exists()


def test_status_of_a_deleted_profile_is_its_tunnels_record(tmp_path: Path, supervisor: Start) -> None:
    profile = tmp_path / "gone.toml"
    supervisor(profile)
    result = CliRunner().invoke(main, ["--profile", str(profile), "status", "--json"])
    assert result.exit_code == 0, result.output  # up, as last recorded
    report = json.loads(result.stdout)
    assert report["tunnel"]["state"] == "up" and report["tunnel"]["profile"] == str(profile)
    assert "no profile here" in report["tunnel"]["warnings"][0]


def test_status_and_down_all(tmp_path: Path, supervisor: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    good = tmp_path / "good.toml"
    good.write_text(LOCAL_PROFILE)
    (_, one), (_, two) = supervisor(good), supervisor(tmp_path / "gone.toml")

    result = CliRunner().invoke(main, ["status", "--all", "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)["tunnels"]
    assert sorted(r["tunnel"]["profile"] for r in reports) == sorted([str(good), str(tmp_path / "gone.toml")])
    # The readable profile's through it; the deleted one's as recorded, saying why.
    by_profile = {r["tunnel"]["profile"]: r["tunnel"] for r in reports}
    assert by_profile[str(good)]["warnings"] == []
    assert "no profile here" in by_profile[str(tmp_path / "gone.toml")]["warnings"][0]

    # This profile has no tunnel: the others are named, with the way to them.
    other = tmp_path / "other.toml"
    other.write_text(LOCAL_PROFILE)
    result = CliRunner().invoke(main, ["--profile", str(other), "down"])
    assert result.exit_code == 0 and "No tunnel was running" in result.stdout
    assert str(good) in result.stderr and "down --all" in result.stderr

    result = CliRunner().invoke(main, ["down", "--all"])
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == sorted(
        [f"Tunnel down: {good}", f"Tunnel down: {tmp_path / 'gone.toml'}"]
    )
    assert one.wait(10) == 0 and two.wait(10) == 0
    assert wait_for(lambda: running.running() == [], 5)

    result = CliRunner().invoke(main, ["status", "--all"])
    assert result.exit_code == 3 and "No tunnel is running." in result.stdout
    result = CliRunner().invoke(main, ["down", "--all"])
    assert result.exit_code == 0 and "No tunnel was running" in result.stdout


def test_the_profile_recorded_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`status --all` and `down` from another directory read the recorded path: `up --profile p.toml` records it
    whole."""
    from ecflow_remote.tunnel.handle import Tunnel

    (tmp_path / "p.toml").write_text(LOCAL_PROFILE)
    monkeypatch.chdir(tmp_path)
    tunnel = Tunnel("p.toml")
    recorded: list[list[str]] = []

    class Popen:
        def __init__(self, argv: list[str], **_: object) -> None:
            recorded.append(argv)
            self.stdin = io.BytesIO()  # the pipe the password variables go through

    monkeypatch.setattr(subprocess, "Popen", Popen)
    tunnel._spawn_supervisor(owned=False)
    assert recorded[0][3] == str(tmp_path / "p.toml") and os.path.isabs(recorded[0][3])
