"""Malformed profiles and arguments through the `ecflow-remote` CLI: one clear line, exit 1, nothing started."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.unit.samples import LOCAL_PROFILE

from ecflow_remote.cli.main import main

GOOD = LOCAL_PROFILE

HOSTILE = "-oProxyCommand=touch /tmp/pwned"


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


@dataclass
class Case:
    name: str
    text: str | bytes | None  # None: the test gives its own --profile
    words: list[str] = field(default_factory=list)  # each must appear in the message (case-insensitive)
    args: list[str] = field(default_factory=lambda: ["up", "--detach"])
    profile_arg: str | None = None
    code: int = 1


CASES = [
    # --------------------------------------------------------------------------- structure and types
    Case("empty file", "", ["gateway"]),
    Case("no gateway", GOOD.split("[[server]]")[0].replace("[gateway]", "[gw]"), ["gw"]),
    Case("toml syntax", GOOD.replace('method = "local"', "method = local"), ["line"]),
    Case("gateway not a table", 'gateway = "jump"\n' + GOOD.split("[gateway]\n")[1].split("[[server]]")[0], []),
    Case("jump not a string", edit('jump = "user1@jump"', "jump = 42"), ["jump"]),
    Case("host missing", edit('host = "user1@machine1"\n', ""), ["host"]),
    Case("unknown top key", GOOD + "\n[extra]\na = 1\n", ["extra"]),
    Case("unknown gateway key", edit('method = "local"', 'method = "local"\nmethd = "socks"'), ["methd"]),
    Case("unknown server key", edit("port = 4141", "port = 4141\nprot = 1"), ["prot"]),
    Case("unknown logserver key", edit("port = 9316", "port = 9316\nhostname = 'x'"), ["hostname"]),
    Case("server not a table", GOOD.split("[[server]]")[0] + 'server = "machine1"\n', ["server"]),
    Case("server without host", edit('host = "machine1"\n', ""), ["host"]),
    Case("bad method", edit('method = "local"', 'method = "vpn"'), ["method", "vpn"]),
    Case("duplicate names", GOOD + '\n[[server]]\nname = "machine1"\nhost = "machine2"\nport = 3142\n', ["machine1"]),
    # --------------------------------------------------------------------------------------- ports
    Case("port zero", edit("port = 4141", "port = 0"), ["port"]),
    Case("port too big", edit("port = 4141", "port = 70000"), ["port"]),
    Case("port negative", edit("port = 4141", "port = -1"), ["port"]),
    Case("port a string", edit("port = 4141", 'port = "4141"'), ["port"]),
    Case("port a float", edit("port = 4141", "port = 4141.5"), ["port"]),
    Case("port a bool", edit("port = 4141", "port = true"), ["port"]),
    Case("logserver port too big", edit("port = 9316", "port = 99999"), ["port"]),
    Case("socks_port too big", edit('method = "local"', 'method = "socks"\nsocks_port = 65536'), ["socks_port"]),
    # ------------------------------------------------------------------------------ bytes and size
    Case("non-UTF-8", GOOD.encode().replace(b"machine1", b"mach\xffine1", 1), ["utf-8"]),
    Case("huge file", GOOD + "#" * (2 * 1024 * 1024) + "\n", ["bigger"]),
    Case("NUL byte", GOOD.replace("machine1", "mach\x00ine1", 1), []),
    # ----------------------------------------------------------- hostile names: never an ssh option
    Case("hostile jump", edit('jump = "user1@jump"', f'jump = "{HOSTILE}"'), ["jump"]),
    Case("hostile jump user", edit('jump = "user1@jump"', 'jump = "-oProxyCommand=x@jump"'), ["jump"]),
    Case("hostile second jump", edit('jump = "user1@jump"', f'jump = "user1@jump,{HOSTILE}"'), ["jump"]),
    Case("hostile workstation", edit('host = "user1@machine1"', f'host = "{HOSTILE}"'), ["host"]),
    Case("hostile server host", edit('host = "machine1"', f'host = "{HOSTILE}"'), ["host"]),
    Case("hostile logserver host", edit('host = "logserver1"', f'host = "{HOSTILE}"'), ["host"]),
    Case("space in host", edit('host = "machine1"', 'host = "machine1 -oProxyCommand=x"'), ["host"]),
    Case("newline in host", edit('host = "machine1"', 'host = "machine1\\n-oProxyCommand=x"'), ["host"]),
    Case("ssh_config token in host", edit('host = "machine1"', 'host = "machine%h"'), ["host"]),
    Case("ssh_config token in jump", edit('jump = "user1@jump"', 'jump = "user1@%d"'), ["jump"]),
    # --------------------------------------------------------------------------------- the files
    Case("profile missing", None, ["no-such-profile.toml"], profile_arg="no-such-profile.toml"),
    Case("profile a directory", None, [], profile_arg="."),
    Case("hostile profile path", None, [], profile_arg=HOSTILE),
    # ------------------------------------------------------------------------------- arguments
    Case("unknown server for run", GOOD, ["nosuch"], args=["run", "--server", "nosuch", "--", "true"]),
    Case("status of unknown server name", GOOD, ["nosuch"], args=["run", "--server", "nosuch", "--", "id"]),
    Case("bad --method", GOOD, ["--method"], args=["up", "--method", "vpn"], code=2),
    Case("bad --timeout", GOOD, ["--timeout"], args=["up", "--timeout", "soon"], code=2),
    Case("run with nothing", GOOD, [], args=["run"], code=2),
    # Nothing can be waited for in 0 s: refused before anything starts (a tunnel was left running).
    Case("up --timeout 0", GOOD, ["--timeout"], args=["up", "--detach", "--timeout", "0"], code=2),
    Case("up --timeout negative", GOOD, ["--timeout"], args=["up", "--detach", "--timeout", "-5"], code=2),
    Case("status --timeout 0", GOOD, ["--timeout"], args=["status", "--timeout", "0"], code=2),
    Case("doctor --timeout negative", GOOD, ["--timeout"], args=["doctor", "--timeout", "-1"], code=2),
    Case("suites --interval 0", GOOD, ["--interval"], args=["suites", "m", "--watch", "--interval", "0"], code=2),
    Case("suites --watch --json", GOOD, ["--watch", "--json"], args=["suites", "m", "--watch", "--json"], code=2),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` first on PATH that records any call: not one may happen for bad input."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ssh-was-called"
    script = bin_dir / "ssh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 255\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return marker


def runtime_states() -> list[Path]:
    root = Path(os.environ["ECFLOW_REMOTE_RUNTIME_DIR"])
    return [p for p in root.rglob("*") if p.name in ("state.json", "jump.sock") or p.name.startswith("ssh-")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, tmp_path: Path, fake_ssh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECFLOW_REMOTE_PROFILE", raising=False)
    profile = tmp_path / "profile.toml"
    if case.text is not None:
        if isinstance(case.text, bytes):
            profile.write_bytes(case.text)
        else:
            profile.write_text(case.text)
    before = runtime_states()
    result = CliRunner().invoke(main, ["--profile", case.profile_arg or str(profile), *case.args])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == case.code, (result.exit_code, output, result.exception)
    # A deliberate error, never a crash: SystemExit from click or our fail(), no traceback.
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    if case.code == 1:
        assert len(lines) == 1, lines
        assert lines[0].startswith("ecflow-remote: ")
        if case.text is not None and case.args[0] != "run":
            assert "profile.toml" in lines[0], lines[0]  # names the file
    for word in case.words:
        assert word.lower() in result.stderr.lower(), (word, result.stderr)
    # Nothing started: ssh never ran (a hostile name never reached it), no tunnel state appeared.
    assert not fake_ssh.exists(), fake_ssh.read_text()
    assert runtime_states() == before
    assert not Path("/tmp/pwned").exists()


def test_missing_ssh_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A good profile but no OpenSSH client: the supervisor says so plainly, and nothing stays running."""
    profile = tmp_path / "profile.toml"
    profile.write_text(GOOD)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("ECFLOW_REMOTE_RUNTIME_DIR", str(tmp_path / "run"))  # other tests' failed starts keep logs
    result = CliRunner().invoke(main, ["--profile", str(profile), "up", "--detach", "--timeout", "10"])
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "ssh" in lines[0] and "PATH" in lines[0], lines
    assert not runtime_states()
