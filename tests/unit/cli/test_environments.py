"""Every command through broken environments (a run directory that is another account's or open to others, a
missing HOME, no profile, an unusable XDG_CONFIG_HOME, no ssh...): never a traceback, a nonzero exit and one line
that says what to do."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.unit.samples import LOCAL_PROFILE

from ecflow_remote.cli.main import main
from ecflow_remote.cli.tunnel import NOT_UP

# Every command, with arguments click accepts: a broken environment must be what stops it.
COMMANDS: dict[str, list[str]] = {
    "up": ["up", "--detach", "--timeout", "5"],
    "down": ["down"],
    "status": ["status", "--timeout", "1"],
    "login": ["login"],
    "doctor": ["doctor", "--timeout", "1"],
    "suites": ["suites", "machine1"],
    "output": ["output", "machine1", "/s/t"],
    "node": ["node", "suspend", "machine1", "/s/t"],
    "why": ["why", "machine1", "/s/t"],
    "run": ["run", "--", "true"],
    "ui": ["ui"],
    # A port already taken: where the environment lets `web` start, it stops there instead of serving for ever.
    "web": ["web", "--no-open", "--port", "{busy}"],
    "open": ["open", "--print", "http://jupyter.ecmwf.int/"],
    "init": ["init", "--jump", "user1@jump", "--host", "user1@machine1", "--server", "m=machine1:4141"],
}
ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody").pw_uid if ROOT else -1
NOBODY_GID = grp.getgrnam("nogroup").gr_gid if ROOT else -1
# ssh that fails as it does for a gateway name that does not resolve: the commands that reach ssh fail fast.
FAKE_SSH = "#!/bin/sh\necho 'ssh: Could not resolve hostname jump: Name or service not known' >&2\nexit 255\n"


@dataclass
class Env:
    """A broken environment: `setup(tmp, monkeypatch)` makes it and returns the global arguments (--profile)."""

    name: str
    setup: Callable[[Path, pytest.MonkeyPatch], list[str]]
    words: list[str] = field(default_factory=list)  # in every failing command's message (not doctor's report)
    # Commands this environment does not stop, and the exit codes they may then end with.
    allowed: dict[str, tuple[int, ...]] = field(default_factory=dict)
    needs_root: bool = False


def _profile(tmp: Path) -> list[str]:
    path = tmp / "profile.toml"
    path.write_text(LOCAL_PROFILE)
    return ["--profile", str(path)]


def _xdg_runtime(tmp: Path, mp: pytest.MonkeyPatch, mode: int, owner: int | None = None) -> Path:
    mp.delenv("ECFLOW_REMOTE_RUNTIME_DIR", raising=False)
    (tmp / "xdg").mkdir(mode=0o700)
    mp.setenv("XDG_RUNTIME_DIR", str(tmp / "xdg"))
    root = tmp / "xdg" / "ecflow-remote"
    root.mkdir()
    root.chmod(mode)
    if owner is not None:
        os.chown(root, owner, -1)
    return root


def run_dir_open(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    _xdg_runtime(tmp, mp, 0o755)
    return _profile(tmp)


def run_dir_foreign(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    _xdg_runtime(tmp, mp, 0o700, owner=NOBODY)
    return _profile(tmp)


def tmp_run_dir_foreign(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """The issue's case: no XDG_RUNTIME_DIR (su -, cron), and another account made /tmp/ecflow-remote-<uid> first."""
    mp.delenv("ECFLOW_REMOTE_RUNTIME_DIR", raising=False)
    mp.delenv("XDG_RUNTIME_DIR", raising=False)
    (tmp / "tmp").mkdir()
    mp.setattr(tempfile, "tempdir", str(tmp / "tmp"))
    planted = tmp / "tmp" / f"ecflow-remote-{os.getuid()}"
    planted.mkdir(mode=0o700)
    os.chown(planted, NOBODY, -1)
    return _profile(tmp)


def run_dir_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    mp.delenv("ECFLOW_REMOTE_RUNTIME_DIR", raising=False)
    (tmp / "xdg-file").write_text("")
    mp.setenv("XDG_RUNTIME_DIR", str(tmp / "xdg-file"))
    return _profile(tmp)


def runtime_override_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "runtime-file").write_text("")
    mp.setenv("ECFLOW_REMOTE_RUNTIME_DIR", str(tmp / "runtime-file"))
    return _profile(tmp)


def no_profile(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "config").mkdir()
    mp.setenv("XDG_CONFIG_HOME", str(tmp / "config"))
    mp.delenv("ECFLOW_REMOTE_PROFILE", raising=False)
    return []


def config_home_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "config-file").write_text("")
    mp.setenv("XDG_CONFIG_HOME", str(tmp / "config-file"))
    mp.delenv("ECFLOW_REMOTE_PROFILE", raising=False)
    return []


def home_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "home-file").write_text("")
    mp.setenv("HOME", str(tmp / "home-file"))
    mp.delenv("XDG_CONFIG_HOME", raising=False)
    mp.delenv("ECFLOW_REMOTE_PROFILE", raising=False)
    return []


def no_home(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """HOME unset (as under some cron and container set-ups), the profile given."""
    mp.delenv("HOME", raising=False)
    mp.delenv("XDG_CONFIG_HOME", raising=False)
    return _profile(tmp)


def profile_env_missing(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    mp.setenv("ECFLOW_REMOTE_PROFILE", str(tmp / "gone" / "profile.toml"))
    return []


def profile_a_fifo(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    os.mkfifo(tmp / "profile.toml")
    return ["--profile", str(tmp / "profile.toml")]


def profile_under_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "notdir").write_text("")
    return ["--profile", str(tmp / "notdir" / "profile.toml")]


def ssh_config_missing(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    path = tmp / "profile.toml"
    path.write_text(LOCAL_PROFILE.replace('method = "local"', f'method = "local"\nssh_config = "{tmp}/no-such-config"'))
    return ["--profile", str(path)]


def empty_path(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """No OpenSSH client (nor anything else) on PATH."""
    (tmp / "empty-bin").mkdir()
    mp.setenv("PATH", str(tmp / "empty-bin"))
    return _profile(tmp)


def cwd_removed(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """The shell's directory was deleted under it; the profile is named relative to it."""
    gone = tmp / "gone"
    gone.mkdir()
    mp.chdir(gone)
    gone.rmdir()
    return ["--profile", "profile.toml"]


# The commands a usable run directory and profile do not stop: `down` and `status` of a tunnel that is not running.
FINE = {"down": (0,), "status": (NOT_UP,), "login": (1,), "init": (1,)}
# The commands that need no run directory: they stop at something else (no login command, ssh, an existing profile).
NO_RUN_DIR = {"login": (1,), "doctor": (1,), "init": (1,)}

ENVS = [
    Env("run dir open to others", run_dir_open, ["chmod 700"], NO_RUN_DIR),
    Env(
        "run dir of another account",
        run_dir_foreign,
        ["another account"],
        NO_RUN_DIR,
        needs_root=True,
    ),
    Env(
        "/tmp run dir of another account",
        tmp_run_dir_foreign,
        ["ECFLOW_REMOTE_RUNTIME_DIR"],
        NO_RUN_DIR,
        needs_root=True,
    ),
    Env("XDG_RUNTIME_DIR a file", run_dir_a_file, ["XDG_RUNTIME_DIR"], NO_RUN_DIR),
    Env(
        "ECFLOW_REMOTE_RUNTIME_DIR a file",
        runtime_override_a_file,
        ["runtime-file"],
        NO_RUN_DIR,
    ),
    Env("no profile", no_profile, ["init"], {"init": (0,)}),
    Env("XDG_CONFIG_HOME a file", config_home_a_file, ["config-file"]),
    Env("HOME a file", home_a_file, ["not a directory"]),
    Env("HOME unset", no_home, [], dict(FINE)),
    Env("ECFLOW_REMOTE_PROFILE missing", profile_env_missing, ["profile.toml"], {"init": (0,)}),
    Env("profile a fifo", profile_a_fifo, ["regular file"], {"init": (1,)}),
    Env("profile under a file", profile_under_a_file, ["notdir"]),
    Env("ssh_config missing", ssh_config_missing, ["no-such-config"], {"init": (1,)}),
    Env("no ssh on PATH", empty_path, [], dict(FINE)),
    Env("working directory removed", cwd_removed, [], {"init": (0, 1, 2)}),
]


def assert_says(command: str, stdout: str, stderr: str, words: list[str]) -> None:
    """A failed command said why: doctor in its report, any other in one last line (a warning may come first)."""
    if command == "doctor":
        assert "Broken link:" in stdout, stdout + stderr
        return
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("ecflow-remote: "), stdout + stderr
    assert len(lines) <= 2, lines
    for word in words:
        assert word.lower() in lines[-1].lower(), (word, lines[-1])


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "ssh"
    script.write_text(FAKE_SSH)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_every_command_is_driven() -> None:
    assert set(COMMANDS) == set(main.commands)  # type: ignore[attr-defined]
    assert len(ENVS) * len(COMMANDS) >= 150


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("env", ENVS, ids=lambda e: e.name)
def test_no_traceback(env: Env, command: str, tmp_path: Path, fake_ssh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    if env.needs_root and not ROOT:
        pytest.skip("needs root (a directory owned by another account)")
    monkeypatch.chdir(tmp_path)
    # Whatever an environment leaves as it is stays inside the test: no `init` may write into the real home, no
    # failed `up` leave its logs in the session's run directory.
    (tmp_path / "home").mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("ECFLOW_REMOTE_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("ECFLOW_REMOTE_PROFILE", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("ECFLOW_REMOTE_DEBUG", raising=False)
    args = env.setup(tmp_path, monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        argv = [*args, *(a.format(busy=busy.getsockname()[1]) for a in COMMANDS[command])]
        result = CliRunner().invoke(main, argv)
    output = result.output + result.stderr
    assert "Traceback" not in output, output
    # A deliberate exit (click's or ours), never an exception escaping: that is a traceback for a user.
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    allowed = env.allowed.get(command)
    if allowed is not None:
        assert result.exit_code in allowed, (result.exit_code, output)
    else:
        assert result.exit_code != 0, output
    if result.exit_code != 0 and (command, result.exit_code) != ("status", NOT_UP):  # 3 is an answer: not up
        assert_says(command, result.stdout, result.stderr, [] if allowed else env.words)


def _python(argv: list[str], env: dict[str, str], **options: Any) -> subprocess.CompletedProcess[str]:
    """`python -m ecflow_remote ARGV` in a process of its own (a real exit, a real traceback)."""
    options = {"stdout": subprocess.PIPE, **options}
    argv = [sys.executable, "-m", "ecflow_remote", *argv]
    return subprocess.run(argv, stderr=subprocess.PIPE, text=True, env=env, timeout=60, **options)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """ECFLOW_REMOTE_DEBUG=1: a system error keeps its traceback, for a bug report (here: output to a full disk)."""
    profile = tmp_path / "profile.toml"
    profile.write_text(LOCAL_PROFILE)
    env = {k: v for k, v in os.environ.items() if k != "ECFLOW_REMOTE_DEBUG"}
    with open("/dev/full", "w") as full:
        done = _python(["--profile", str(profile), "status"], {**env, "ECFLOW_REMOTE_DEBUG": "1"}, stdout=full)
        assert done.returncode == 1 and "Traceback" in done.stderr and "No space left" in done.stderr
        done = _python(["--profile", str(profile), "status"], env, stdout=full)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "free some space" in done.stderr


# ------------------------------------------------------------------------------------- as another account


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory that root and `nobody` both reach (pytest's own tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="ecflow-remote-env-", dir="/tmp"))
    path.chmod(0o1777)  # as /tmp: nobody's TMPDIR must be writable, or Python falls back to the real /tmp
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_nobody(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _python(argv, env, user=NOBODY, group=NOBODY_GID, extra_groups=[], cwd="/")


@pytest.mark.skipif(not ROOT, reason="needs root (to run as another account)")
@pytest.mark.parametrize("scenario", ["profile unreadable", "/tmp run dir made by root"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_traceback_as_another_account(command: str, scenario: str, shared_dir: Path) -> None:
    """A normal account on a shared machine: a profile it may not read (root's, 0600), or the /tmp run directory
    made first by another account (no XDG_RUNTIME_DIR, as under su - or cron)."""
    home = shared_dir / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY_GID)
    profile = shared_dir / "profile.toml"
    profile.write_text(LOCAL_PROFILE)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    if scenario == "profile unreadable":
        profile.chmod(0o600)
        env["ECFLOW_REMOTE_RUNTIME_DIR"] = str(home / "run")
        words = ["permission denied", "another account"]
    else:
        profile.chmod(0o644)
        env["TMPDIR"] = str(shared_dir)
        (shared_dir / f"ecflow-remote-{NOBODY}").mkdir(mode=0o700)  # root's, where nobody's run directory goes
        words = ["another account", "ECFLOW_REMOTE_RUNTIME_DIR"]
    with socket.create_server(("127.0.0.1", 0)) as busy:
        args = [a.format(busy=busy.getsockname()[1]) for a in COMMANDS[command]]
        if command == "init":
            args += ["--method", "local"]
            (shared_dir / "roots").mkdir(mode=0o755)  # root's: nobody cannot write a profile there
            done = _as_nobody(["--profile", str(shared_dir / "roots" / "new.toml"), *args], env)
        else:
            done = _as_nobody(["--profile", str(profile), *args], env)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode != 0, done.stdout + done.stderr
    if command == "init":
        words = ["new.toml", "permission denied"]
    elif command == "login" and scenario != "profile unreadable":
        words = ["login"]  # no run directory needed: it stops at the missing login command
    assert_says(command, done.stdout, done.stderr, words)
