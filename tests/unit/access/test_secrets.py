"""Passwords never corrupt ecFlow's password file and never ride along in an ssh's environment."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest

from ecflow_remote.access.passwords import read_password, read_passwords
from ecflow_remote.errors import PasswordError
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import PasswordSource
from ecflow_remote.transport.ssh import ssh_environ
from ecflow_remote.tunnel.sshleg import Leg

SECRET_VAR = "ECFLOW_REMOTE_TEST_SECRET"
PROFILE = """[gateway]
host = "user1@machine1"
[[server]]
name = "m1"
host = "machine1"
port = 4141
custom_user = "fred"
password = "env:{var}"
"""

# Passwords ecFlow's `user host port password` lines cannot hold: each is refused, naming the cause, never shown.
UNWRITABLE = [
    pytest.param("zqk\n", "a space, tab or line break", id="two-final-newlines-in-a-file"),
    pytest.param("zqk xwv", "a space, tab or line break", id="space"),
    pytest.param("zqk\txwv", "a space, tab or line break", id="tab"),
    pytest.param("zqk\nfred 127.0.0.1 4141 xwv", "a space, tab or line break", id="newline-injects-a-line"),
    pytest.param("zqk\rxwv", "a space, tab or line break", id="carriage-return"),
    pytest.param("zqk#xwv", "'#' (a comment there)", id="hash"),
]


@pytest.mark.parametrize(("secret", "words"), UNWRITABLE)
def test_a_password_ecflow_cannot_hold_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str, words: str
) -> None:
    monkeypatch.setenv(SECRET_VAR, secret)
    pw = tmp_path / "pw"
    pw.write_text(secret + "\n")
    pw.chmod(0o600)
    for source in (PasswordSource("env", SECRET_VAR), PasswordSource("file", str(pw))):
        with pytest.raises(PasswordError, match=re.escape(words)) as info:
            read_password(source)
        assert "zqk" not in str(info.value) and "xwv" not in str(info.value)


def test_the_passwd_file_gets_no_line_from_such_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server goes without a password (the failure rule) instead of a file whose lines mean something else."""
    monkeypatch.setenv(SECRET_VAR, "zqk\nfred 127.0.0.1 4141 xwv")
    path = tmp_path / "profile.toml"
    path.write_text(PROFILE.format(var=SECRET_VAR))
    found, problems = read_passwords(load_profile(path))
    assert found == {}
    assert len(problems) == 1 and "server m1" in problems[0] and "xwv" not in problems[0]


def test_ssh_environ_drops_the_profiles_password_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the profile, read or not: the head start's jump ssh starts before any password is read."""
    monkeypatch.setenv(SECRET_VAR, "s3cret")
    path = tmp_path / "profile.toml"
    path.write_text(PROFILE.format(var=SECRET_VAR))
    profile = load_profile(path)
    env = ssh_environ(profile)
    assert SECRET_VAR not in env and env["PATH"] == os.environ["PATH"]
    assert profile.without_password_variables({SECRET_VAR: "x", "A": "b"}) == {"A": "b"}
    assert read_password(PasswordSource("env", SECRET_VAR)) == "s3cret"
    assert os.environ[SECRET_VAR] == "s3cret"  # this process still has it (it may read it again)


def test_an_ssh_leg_does_not_inherit_a_password_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing read yet (as at the head start): the leg's environment still comes without the variable."""
    monkeypatch.setenv(SECRET_VAR, "s3cret")
    path = tmp_path / "profile.toml"
    path.write_text(PROFILE.format(var=SECRET_VAR))
    out = tmp_path / "env.txt"
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(f"#!/bin/sh\nenv > {out}.part && mv {out}.part {out}\n")
    fake_ssh.chmod(fake_ssh.stat().st_mode | stat.S_IXUSR)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    leg = Leg("main", [str(fake_ssh)])
    leg.start(run, ssh_environ(load_profile(path)))
    try:
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        seen = out.read_text()
    finally:
        leg.stop()
    assert "PATH=" in seen
    assert SECRET_VAR not in seen and "s3cret" not in seen
