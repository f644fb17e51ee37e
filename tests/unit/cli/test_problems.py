"""System errors and bugs as one line: the path, the variable it comes from, what to do (cli/problems.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecflow_remote.cli import problems
from ecflow_remote.cli.main import main

ENV = {"XDG_RUNTIME_DIR": "/run/user/1000", "XDG_CONFIG_HOME": "/home/u/.config", "HOME": "/home/u"}


def oserror(code: int, path: str | None) -> OSError:
    e = OSError(code, os.strerror(code), *([path] if path else []))
    return e


CASES = [
    (errno.EACCES, "/run/user/1000/ecflow-remote/x", ["$XDG_RUNTIME_DIR", "permission denied", "ls -ld"]),
    (errno.EPERM, "/home/u/.config/ecflow-remote/profile.toml", ["$XDG_CONFIG_HOME", "ls -ld"]),
    (errno.ENOENT, "/nowhere/file", ["no such file", "check the path"]),
    (errno.ENOTDIR, "/home/u/file/sub", ["$HOME", "is a file where a directory belongs"]),
    (errno.EEXIST, "/run/user/1000/ecflow-remote", ["$XDG_RUNTIME_DIR", "file where a directory belongs"]),
    (errno.ENOSPC, "/run/user/1000/ecflow-remote/state.json", ["free some space"]),
    (errno.EDQUOT, "/home/u/x", ["free some space"]),
    (errno.EROFS, "/srv/ro/x", ["read-only", "writable path"]),
    (errno.ENAMETOOLONG, "/a/" + "b" * 300, ["shorter path"]),
    (errno.EIO, "/dev/sdz", ["ECFLOW_REMOTE_DEBUG=1"]),
    (errno.EMFILE, None, ["too many open files", "ECFLOW_REMOTE_DEBUG=1"]),
]


@pytest.mark.parametrize(("code", "path", "words"), CASES, ids=[errno.errorcode[c[0]] for c in CASES])
def test_os_error_line(code: int, path: str | None, words: list[str]) -> None:
    line = problems.os_error_line(oserror(code, path), environ=ENV, uid=os.getuid())
    assert "\n" not in line
    if path:
        assert line.startswith(path[:20]), line
    for word in words:
        assert word.lower() in line.lower(), (word, line)


def test_another_accounts_path(tmp_path: Path) -> None:
    """Permission denied on a path of another account: chmod is not the advice, a path of one's own is."""
    mine = problems.os_error_line(oserror(errno.EACCES, str(tmp_path / "x")), environ={}, uid=os.getuid())
    theirs = problems.os_error_line(oserror(errno.EACCES, str(tmp_path / "x")), environ={}, uid=os.getuid() + 1)
    assert "ls -ld" in mine and "another account" not in mine
    assert "another account" in theirs and "of your own" in theirs


def test_connection_error_without_path() -> None:
    line = problems.os_error_line(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), environ={})
    assert line.startswith("Connection reset by peer") and "doctor" in line


def test_internal_error_line() -> None:
    line = problems.internal_error_line(ValueError("bad thing\nsecond line"))
    assert "ValueError: bad thing" in line and "second line" not in line and "ECFLOW_REMOTE_DEBUG=1" in line


@pytest.mark.parametrize(("value", "on"), [("", False), ("0", False), ("1", True), ("yes", True)])
def test_debugging(value: str, on: bool) -> None:
    assert problems.debugging({problems.DEBUG_VARIABLE: value}) is on


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/srv/x"), 2, ["/srv/x", "permission denied"]),
        (KeyError("HOME"), 70, ["internal error", "KeyError", "ECFLOW_REMOTE_DEBUG=1"]),
        (RuntimeError("Could not determine home directory."), 70, ["RuntimeError", "home directory"]),
    ],
    ids=["oserror", "bug", "runtime"],
)
def test_through_the_command_line(
    error: Exception, code: int, words: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Whatever a command meets, the user gets one line and an exit code; ECFLOW_REMOTE_DEBUG=1 lets it through."""
    from ecflow_remote.cli import app

    def broken(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(app.Context, "tunnel", broken)
    monkeypatch.delenv(problems.DEBUG_VARIABLE, raising=False)
    result = CliRunner().invoke(main, ["--profile", str(tmp_path / "p.toml"), "status"])
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecflow-remote: "), lines
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    monkeypatch.setenv(problems.DEBUG_VARIABLE, "1")
    result = CliRunner().invoke(main, ["--profile", str(tmp_path / "p.toml"), "status"])
    assert result.exception is error


def test_broken_pipe_is_quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`ecflow-remote status | head -1`: the reader went away; nothing more to say, no traceback."""
    from ecflow_remote.cli import app

    def broken(*_: object, **__: object) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(app.Context, "tunnel", broken)
    monkeypatch.setattr(app.os, "dup2", lambda *_: None)  # CliRunner's stdout is not a real file
    result = CliRunner().invoke(main, ["--profile", str(tmp_path / "p.toml"), "status"])
    assert result.exit_code == 1 and result.stderr == ""
