"""profile/load.py: every malformed profile gets an error naming file, line and key; good ones load."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecflow_remote.access.passwords import read_password
from ecflow_remote.errors import EcflowRemoteError, ProfileError
from ecflow_remote.profile.load import default_profile_path, load_profile
from ecflow_remote.profile.model import (
    METHODS,
    Gateway,
    LogServer,
    PasswordSource,
    Profile,
    Server,
    SshTarget,
    parse_target,
)

# A line ending with this marker is where the error must point.
MARK = "# <-"

GATEWAY = '[gateway]\nhost = "user1@machine1"\n'
SERVER1 = '\n[[server]]\nname = "m1"\nhost = "machine1"\nport = 4141\n'
GOOD = GATEWAY + SERVER1


def server(name: str = "m2", host: str = "machine2", port: str = "3142", extra: str = "") -> str:
    return f'\n[[server]]\nname = "{name}"\nhost = "{host}"\nport = {port}\n{extra}'


def make_password_file(mode: int) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        secret = tmp / "pw.txt"
        secret.write_text("s3cret\n")
        secret.chmod(mode)

    return setup


@dataclass
class Case:
    id: str
    content: str | bytes
    key: str | None
    fragment: str
    setup: Callable[[Path], None] | None = None
    # For bytes contents (no marker possible) the expected line is given here.
    line: int | None = None


CASES: list[Case] = [
    # -- missing things
    Case("no-gateway", SERVER1, "gateway", "missing [gateway]"),
    Case("gateway-no-host", f"[gateway]  {MARK}\njump = 'j1'\n" + SERVER1, "gateway.host", "missing required key"),
    Case("no-server", GATEWAY, "server", "[[server]]"),
    Case(
        "server-no-name",
        GATEWAY + f'\n[[server]]  {MARK}\nhost = "machine1"\nport = 4141\n',
        "server[1].name",
        "missing required key 'name'",
    ),
    Case(
        "server-no-host",
        GOOD + f'\n[[server]]  {MARK}\nname = "m2"\nport = 4141\n',
        "server[2].host",
        "missing required key 'host'",
    ),
    Case(
        "server-no-port",
        GATEWAY + f'\n[[server]]  {MARK}\nname = "m1"\nhost = "machine1"\n',
        "server[1].port",
        "missing required key 'port'",
    ),
    Case(
        "logserver-no-host",
        GOOD + f"\n[[logserver]]  {MARK}\nport = 9316\n",
        "logserver[1].host",
        "missing required key 'host'",
    ),
    # -- wrong types
    Case("port-string", GOOD + server(port=f'"3142"  {MARK}'), "server[2].port", "without quotes"),
    Case("port-bool", GOOD + server(port=f"true  {MARK}"), "server[2].port", "a boolean"),
    Case("port-float", GOOD + server(port=f"31.42  {MARK}"), "server[2].port", "number with a fraction"),
    Case("port-array", GOOD + server(port=f"[3142]  {MARK}"), "server[2].port", "an array"),
    Case("name-int", GATEWAY + f'\n[[server]]\nname = 5  {MARK}\nhost = "h"\nport = 1\n', "server[1].name", "string"),
    Case(
        "method-int",
        GATEWAY.replace("[gateway]\n", f"[gateway]\nmethod = 1  {MARK}\n") + SERVER1,
        "gateway.method",
        "string",
    ),
    Case("gateway-string", f'gateway = "user1@machine1"  {MARK}\n' + SERVER1, "gateway", "expected a table"),
    Case(
        "server-single-table",
        GATEWAY + f'\n[server]  {MARK}\nname = "m1"\nhost = "h"\nport = 1\n',
        "server",
        "[[server]]",
    ),
    Case(
        "warn-before-bool",
        GATEWAY + f"warn_before = true  {MARK}\n" + SERVER1,
        "gateway.warn_before",
        "duration",
    ),
    Case(
        "logserver-port-string",
        GOOD + f'\n[[logserver]]\nhost = "log1"\nport = "9316"  {MARK}\n',
        "logserver[1].port",
        "a string",
    ),
    # -- bad values
    Case("port-zero", GOOD + server(port=f"0  {MARK}"), "server[2].port", "0 is not a TCP port (1-65535)"),
    Case("port-too-big", GOOD + server(port=f"70000  {MARK}"), "server[2].port", "70000 is not a TCP port"),
    Case("port-negative", GOOD + server(port=f"-1  {MARK}"), "server[2].port", "-1 is not a TCP port"),
    Case("socks-port-too-big", GATEWAY + f"socks_port = 65536  {MARK}\n" + SERVER1, "gateway.socks_port", "65536"),
    Case("method-typo", GATEWAY + f'method = "sock"  {MARK}\n' + SERVER1, "gateway.method", "Did you mean 'socks'"),
    Case("method-unknown", GATEWAY + f'method = "vpn"  {MARK}\n' + SERVER1, "gateway.method", "local, socks, hosts"),
    Case(
        "protocol-unknown",
        GOOD + server(extra=f'protocol = "tls"  {MARK}\n'),
        "server[2].protocol",
        "plain, ssl, http, https",
    ),
    Case("protocol-typo", GOOD + server(extra=f'protocol = "htps"  {MARK}\n'), "server[2].protocol", "'http"),
    Case("transport-typo", GATEWAY + f'transport = "agnet"  {MARK}\n' + SERVER1, "gateway.transport", "'agent'"),
    Case("transport-unknown", GATEWAY + f'transport = "vpn"  {MARK}\n' + SERVER1, "gateway.transport", "auto, agent"),
    Case(
        "agent-python-relative",
        GATEWAY + f'agent_python = "python3"  {MARK}\n' + SERVER1,
        "gateway.agent_python",
        "absolute",
    ),
    Case(
        "agent-python-shell",
        GATEWAY + f'agent_python = "/usr/bin/python3;rm -rf ~"  {MARK}\n' + SERVER1,
        "gateway.agent_python",
        "absolute path",
    ),
    Case(
        "warn-before-words",
        GATEWAY + f'warn_before = "30 minutes"  {MARK}\n' + SERVER1,
        "gateway.warn_before",
        "not a duration",
    ),
    Case(
        "login-two-lines",
        GATEWAY + f'login = "tsh login\\nrm -rf ~"  {MARK}\n' + SERVER1,
        "gateway.login",
        "one line",
    ),
    # -- unknown tables and keys
    Case("unknown-table", GOOD + f'\n[[servers]]  {MARK}\nname = "x"\n', "servers", "Did you mean 'server'"),
    Case("unknown-top-key", f"verbose = true  {MARK}\n" + GOOD, "verbose", "unknown key 'verbose'"),
    Case("unknown-gateway-key", GATEWAY + f'hots = "x"  {MARK}\n' + SERVER1, "gateway.hots", "Did you mean 'host'"),
    Case("unknown-server-key", GOOD + f"prot = 1  {MARK}\n", "server[1].prot", "in [[server]]. Did you mean 'port'"),
    Case(
        "unknown-logserver-key",
        GOOD + f'\n[[logserver]]\nhost = "log1"\nhots = "x"  {MARK}\n',
        "logserver[1].hots",
        "unknown key",
    ),
    # -- duplicates
    Case("duplicate-name", GOOD + server(name=f'm1"  {MARK}\n#"'), "server[2].name", "server[1]"),
    Case(
        "duplicate-endpoint",
        GOOD + server(host="MACHINE1", port=f"4141  {MARK}"),
        "server[2].port",
        "already server[1]",
    ),
    Case(
        "duplicate-logserver",
        GOOD + '\n[[logserver]]\nhost = "log1"\n' + f'\n[[logserver]]\nhost = "log1"  {MARK}\nport = 9316\n',
        "logserver[2].host",
        "already logserver[1]",
    ),
    # -- hostile or malformed names
    Case(
        "host-proxycommand",
        f'[gateway]\nhost = "-oProxyCommand=touch /tmp/x"  {MARK}\n' + SERVER1,
        "gateway.host",
        "not a plain host name",
    ),
    Case(
        "jump-proxycommand",
        GATEWAY + f'jump = "user1@jump,-oProxyCommand=x"  {MARK}\n' + SERVER1,
        "gateway.jump",
        "not starting with '-'",
    ),
    Case(
        "user-option",
        f'[gateway]\nhost = "-oProxyCommand=x@machine1"  {MARK}\n' + SERVER1,
        "gateway.host",
        "not a plain user name",
    ),
    Case("jump-empty", GATEWAY + f'jump = ""  {MARK}\n' + SERVER1, "gateway.jump", "empty"),
    Case("jump-empty-part", GATEWAY + f'jump = "j1,,j2"  {MARK}\n' + SERVER1, "gateway.jump", "empty ssh host"),
    Case("jump-bad-port", GATEWAY + f'jump = "j1:99999"  {MARK}\n' + SERVER1, "gateway.jump", "99999"),
    Case("jump-port-word", GATEWAY + f'jump = "j1:ssh"  {MARK}\n' + SERVER1, "gateway.jump", "'ssh' is not a port"),
    Case("host-space", GOOD + server(host=f'a b"  {MARK}\n#"'), "server[2].host", "'a b'"),
    Case("host-percent", GOOD + server(host=f'host%h"  {MARK}\n#"'), "server[2].host", "'%'"),
    Case("host-empty", GOOD + server(host=f'"  {MARK}\n#"'), "server[2].host", "empty"),
    Case("host-with-port", GOOD + server(host=f'machine2:3142"  {MARK}\n#"'), "server[2].host", "bare host"),
    Case("host-with-user", GOOD + server(host=f'u@machine2"  {MARK}\n#"'), "server[2].host", "not a plain host"),
    Case("host-leading-dash", GOOD + server(host=f'-machine2"  {MARK}\n#"'), "server[2].host", "not starting"),
    Case("host-too-long", GOOD + server(host="a" * 254 + f'"  {MARK}\n#"'), "server[2].host", "longer than 253"),
    Case(
        "logserver-host-control",
        GOOD + f'\n[[logserver]]\nhost = "log\\u0001"  {MARK}\n',
        "logserver[1].host",
        "not a plain host",
    ),
    Case("name-comma", GOOD + server(name=f'a,b"  {MARK}\n#"'), "server[2].name", "','"),
    Case("name-newline", GOOD + server(name=f'a\\nb"  {MARK}\n#"'), "server[2].name", "line breaks"),
    Case("name-empty", GOOD + server(name=f'"  {MARK}\n#"'), "server[2].name", "empty"),
    Case("name-comment", GOOD + server(name=f'#m2"  {MARK}\n#"'), "server[2].name", "'#'"),
    Case(
        "ecflow-user-option",
        GATEWAY + f'ecflow_user = "-l"  {MARK}\n' + SERVER1,
        "gateway.ecflow_user",
        "not a plain user name",
    ),
    Case(
        "custom-user-space",
        GOOD + f'custom_user = "my user"  {MARK}\npassword = "env:PW"\n',
        "server[1].custom_user",
        "not a plain user name",
    ),
    # -- passwords
    Case("password-without-custom-user", GOOD + f'password = "env:PW"  {MARK}\n', "server[1].password", "custom_user"),
    Case(
        "password-literal",
        GOOD + f'custom_user = "me"\npassword = "hunter2"  {MARK}\n',
        "server[1].password",
        "unknown password scheme",
    ),
    Case(
        "password-bad-scheme",
        GOOD + f'custom_user = "me"\npassword = "vault:x"  {MARK}\n',
        "server[1].password",
        "unknown password scheme",
    ),
    Case(
        "password-env-empty",
        GOOD + f'custom_user = "me"\npassword = "env:"  {MARK}\n',
        "server[1].password",
        "nothing after",
    ),
    Case(
        "password-env-bad-name",
        GOOD + f'custom_user = "me"\npassword = "env:1 BAD"  {MARK}\n',
        "server[1].password",
        "environment variable name",
    ),
    Case(
        "password-int",
        GOOD + f'custom_user = "me"\npassword = 123456  {MARK}\n',
        "server[1].password",
        "expected a string, got an integer: write where the password comes from",
    ),
    Case(
        "password-file-world-readable",
        GOOD + f'custom_user = "me"\npassword = "file:{{tmp}}/pw.txt"  {MARK}\n',
        "server[1].password",
        "chmod 600",
        setup=make_password_file(0o644),
    ),
    # -- files
    Case(
        "ssh-config-missing",
        GATEWAY + f'ssh_config = "{{tmp}}/no-such-config"  {MARK}\n' + SERVER1,
        "gateway.ssh_config",
        "does not exist",
    ),
    Case("toml-syntax", GATEWAY + f"\n[[server]]\nname = 'm1'\nport = 41 41  {MARK}\n", None, "TOML syntax error"),
    Case("toml-unclosed-string", f'[gateway]\nhost = "user1@machine1  {MARK}\n', None, "TOML syntax error"),
    Case("not-utf8", b'[gateway]\nhost = "user1@machine1"\n# caf\xe9\n', None, "not UTF-8", line=3),
    Case("huge", "# " + "x" * (1024 * 1024) + "\n" + GOOD, None, "bigger than 1 MiB"),
    # -- [ui]
    Case("ui-not-table", f'ui = "x"  {MARK}\n' + GOOD, "ui", "expected a table [ui]"),
    Case("ui-unknown-key", GOOD + f"\n[ui]\nsystem_server = []  {MARK}\n", "ui.system_server", "'system_servers'"),
    Case("ui-string", GOOD + f'\n[ui]\nsystem_servers = "/a"  {MARK}\n', "ui.system_servers", '["/a"]'),
    Case("ui-relative", GOOD + f'\n[ui]\nsystem_servers = ["a/b"]  {MARK}\n', "ui.system_servers", "absolute"),
    Case("ui-colon", GOOD + f'\n[ui]\nsystem_servers = ["/a:/b"]  {MARK}\n', "ui.system_servers", "':'"),
    Case("ui-number", GOOD + f"\n[ui]\nsystem_servers = [1]  {MARK}\n", "ui.system_servers", "a string"),
    Case("ui-newline", GOOD + f'\n[ui]\nsystem_servers = ["/a\\nb"]  {MARK}\n', "ui.system_servers", "line breaks"),
    # -- [web]
    Case("web-unknown-key", GOOD + f"\n[web]\ndomain = []  {MARK}\n", "web.domain", "'domains'"),
    Case("web-string", GOOD + f'\n[web]\ndomains = "*.a.int"  {MARK}\n', "web.domains", "array of names"),
    Case("web-everything", GOOD + f'\n[web]\ndomains = ["*"]  {MARK}\n', "web.domains", "every name"),
    Case("web-bracket", GOOD + f'\n[web]\ndomains = ["[ab].int"]  {MARK}\n', "web.domains", "wildcards"),
    Case("web-empty", GOOD + f"\n[web]\ndomains = []  {MARK}\n", "web.domains", "is empty"),
    Case("web-port", GOOD + f'\n[web]\nport = "8080"  {MARK}\n', "web.port", "integer TCP port"),
]


def marked_line(content: str) -> int | None:
    for number, line in enumerate(content.splitlines(), start=1):
        if line.rstrip().endswith(MARK):
            return number
    return None


def test_enough_bad_cases() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_profile(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "profile.toml"
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
        expected_line = case.line
    else:
        content = case.content.replace("{tmp}", str(tmp_path))
        path.write_text(content, encoding="utf-8")
        expected_line = marked_line(content)
    if case.setup is not None:
        case.setup(tmp_path)

    with pytest.raises(ProfileError) as info:
        load_profile(path)

    err = info.value
    assert isinstance(err, EcflowRemoteError)
    assert err.path == path
    assert err.key == case.key, str(err)
    assert err.line == expected_line, str(err)
    text = str(err)
    assert case.fragment in text
    prefix = f"{path}:{expected_line}: " if expected_line is not None else f"{path}: "
    assert text.startswith(prefix + (f"{case.key}: " if case.key else "")), text


def test_literal_password_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    for value in ('"hunter2"', '"hunter2:sesame"', "424242"):
        path.write_text(GOOD + f'custom_user = "me"\npassword = {value}\n')
        with pytest.raises(ProfileError) as info:
            load_profile(path)
        assert "hunter2" not in str(info.value)
        assert "sesame" not in str(info.value)
        assert "424242" not in str(info.value)


def test_error_format_matches_contract(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text(GOOD + server(port="70000"))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(info.value) == f"{path}:12: server[2].port: 70000 is not a TCP port (1-65535). Fix the port number."


def test_error_path_shows_home_as_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / ".config" / "ecflow-remote" / "profile.toml"
    path.parent.mkdir(parents=True)
    path.write_text(GOOD + server(port="70000"))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(info.value).startswith("~/.config/ecflow-remote/profile.toml:12: server[2].port: ")


def test_missing_file_hints_init(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(tmp_path / "nope.toml")
    assert "ecflow-remote init" in str(info.value)
    assert info.value.line is None


def test_directory_is_not_a_profile(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="directory"):
        load_profile(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "profile.toml"
    path.write_text(GOOD)

    # chmod 0 does not stop root (the test may run as root), so the refusal is simulated (at the one open).
    real_open = os.open

    def refuse(file: str, *args: int) -> int:
        if str(file).endswith("profile.toml"):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ProfileError, match="permission denied") as info:
        load_profile(path)
    assert info.value.path == path
    # Either mode, and why either is safe: not "chmod 644" alone for a file that may be meant to stay private.
    assert f"chmod 600 {path}" in str(info.value) and f"chmod 644 {path}" in str(info.value)
    assert "holds no secret" in str(info.value)


# ------------------------------------------------------------------------------------------------ good paths


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


def test_minimal_profile_defaults(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD + '\n[[logserver]]\nhost = "log1"\n'))
    assert profile.path == tmp_path / "profile.toml"
    assert profile.gateway == Gateway(
        jump=(),
        host=SshTarget("user1", "machine1", None),
        ssh_config=None,
        method="local",
        socks_port=9050,
        ecflow_user=None,
        login=None,
        warn_before=1800.0,
    )
    assert profile.servers == (Server("m1", "machine1", 4141, None, None, None),)
    assert profile.logservers == (LogServer("log1", 9316),)


def test_full_profile(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x")
    secret.chmod(0o600)
    text = f"""
[gateway]
jump = "user1@jump.example.int:2222, jump2"
host = "user1@machine1:22"
method = "socks"
socks_port = 1080
ecflow_user = "user1"
login = "tsh login --proxy=jump.example.int"
warn_before = "2h"

[[server]]
name = "machine1"
host = "machine1"
port = 4141

[[server]]
name = "ops server"
host = "ecflow-ops.example.int"
port = 3141
ecflow_user = "ops_1"
custom_user = "myecflowuser"
password = "file:{secret}"

[[server]]
name = "m3"
host = "machine3"
port = 4141
custom_user = "other"
password = "keyring:ecflow"

[[logserver]]
host = "logserver1"

[[logserver]]
host = "logserver1"
port = 9317
"""
    profile = load_profile(write(tmp_path, text))
    gateway = profile.gateway
    assert gateway.jump == (SshTarget("user1", "jump.example.int", 2222), SshTarget(None, "jump2", None))
    assert [str(t) for t in gateway.jump] == ["user1@jump.example.int:2222", "jump2"]
    assert gateway.host.uri() == "ssh://user1@machine1:22"
    assert gateway.method == "socks"
    assert gateway.socks_port == 1080
    assert gateway.login == "tsh login --proxy=jump.example.int"
    assert gateway.warn_before == 7200.0
    m1, ops, m3 = profile.servers
    assert m1.ecflow_user == "user1"  # inherited from the gateway
    assert ops.ecflow_user == "ops_1"  # its own
    assert ops.password == PasswordSource("file", str(secret), "myecflowuser")
    assert m3.password == PasswordSource("keyring", "ecflow", "other")
    assert profile.server("ops server") is ops
    assert profile.centre_hosts() == ["machine1", "ecflow-ops.example.int", "machine3", "logserver1"]
    assert profile.logservers[1] == LogServer("logserver1", 9317)


@pytest.mark.parametrize(
    ("value", "seconds"), [('"90s"', 90.0), ('"30m"', 1800.0), ('"1.5h"', 5400.0), ("600", 600.0), ('"0m"', 0.0)]
)
def test_warn_before_units(tmp_path: Path, value: str, seconds: float) -> None:
    profile = load_profile(write(tmp_path, GATEWAY + f"warn_before = {value}\n" + SERVER1))
    assert profile.gateway.warn_before == seconds


def test_ssh_config_tilde_and_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    config = tmp_path / ".ssh" / "config"
    config.write_text("Host *\n")
    profile = load_profile(write(tmp_path, GATEWAY + 'ssh_config = "~/.ssh/config"\n' + SERVER1))
    assert profile.gateway.ssh_config == config
    # Relative to the profile's directory, not the current one.
    profile = load_profile(write(tmp_path, GATEWAY + 'ssh_config = ".ssh/config"\n' + SERVER1))
    assert profile.gateway.ssh_config == config
    # Also when the profile itself is given by a relative path.
    monkeypatch.chdir(tmp_path)
    profile = load_profile(Path("profile.toml"))
    assert profile.gateway.ssh_config == config


def test_password_file_tilde_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    profile = load_profile(write(tmp_path, GOOD + 'custom_user = "me"\npassword = "file:~/pw"\n'))
    assert profile.servers[0].password == PasswordSource("file", str(tmp_path / "pw"), "me")


def test_with_method(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD))
    for method in METHODS:
        changed = profile.with_method(method)
        assert changed.gateway.method == method
        assert changed.servers == profile.servers
    assert profile.gateway.method == "local"
    with pytest.raises(ProfileError, match="local, socks, hosts"):
        profile.with_method("vpn")


def test_unknown_server_lists_known_names(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD + server()))
    with pytest.raises(ProfileError) as info:
        profile.server("m9")
    assert "m1, m2" in str(info.value)


def test_parse_target() -> None:
    assert parse_target("host", "k") == SshTarget(None, "host", None)
    assert parse_target(" u@h:22 ", "k") == SshTarget("u", "h", 22)
    assert str(SshTarget("u", "h", None)) == "u@h"
    with pytest.raises(ProfileError) as info:
        parse_target("-oProxyCommand=x", "gateway.jump")
    assert info.value.key == "gateway.jump"


def test_default_profile_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECFLOW_REMOTE_PROFILE", str(tmp_path / "p.toml"))
    assert default_profile_path() == tmp_path / "p.toml"
    monkeypatch.delenv("ECFLOW_REMOTE_PROFILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_profile_path() == tmp_path / "xdg" / "ecflow-remote" / "profile.toml"
    assert default_profile_path().name == "profile.toml"


def test_load_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECFLOW_REMOTE_PROFILE", str(write(tmp_path, GOOD)))
    assert load_profile().servers[0].name == "m1"


def test_profile_repr_holds_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECF_TEST_PW", "s3cret")
    profile = load_profile(write(tmp_path, GOOD + 'custom_user = "me"\npassword = "env:ECF_TEST_PW"\n'))
    password = profile.servers[0].password
    assert password is not None and read_password(password) == "s3cret"
    assert "s3cret" not in repr(profile)
    assert isinstance(profile, Profile)


def test_ui_system_servers(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(GOOD)
    assert load_profile(path).ui.system_servers is None  # not said: the workstation's login environment decides
    path.write_text(GOOD + '\n[ui]\nsystem_servers = ["/usr/local/ecflow/servers", "/home/u/s", "/home/u/s"]\n')
    assert load_profile(path).ui.system_servers == ("/usr/local/ecflow/servers", "/home/u/s")
    path.write_text(GOOD + "\n[ui]\nsystem_servers = []\n")
    assert load_profile(path).ui.system_servers == ()  # none at all


def test_protocol_defaults_to_plain_and_is_read(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD + server(extra='protocol = "ssl"\n')))
    assert [s.protocol for s in profile.servers] == ["plain", "ssl"]


def test_web_domains_given_or_from_the_profile_hosts(tmp_path: Path) -> None:
    from ecflow_remote.profile.webtable import domains, is_centre_name

    path = tmp_path / "p.toml"
    jump = '[gateway]\njump = "u@jump.ecmwf.int"\nhost = "u@ws1.ecmwf.int"\n'
    path.write_text(jump + SERVER1 + '\n[[logserver]]\nhost = "198.18.0.1"\n')
    profile = load_profile(path)
    assert profile.web.domains is None and profile.web.port is None
    assert domains(profile) == ("*.ecmwf.int", "machine1")  # an address is no name to match
    assert is_centre_name("jupyterhub.ecmwf.int", domains(profile)) and is_centre_name("MACHINE1.", domains(profile))
    assert not is_centre_name("ecmwf.int.example.org", domains(profile)) and not is_centre_name("x", domains(profile))
    path.write_text(GOOD + '\n[web]\ndomains = ["*.Centre.test", "hub", "hub"]\nport = 8118\n')
    profile = load_profile(path)
    assert domains(profile) == ("*.centre.test", "hub") and profile.web.port == 8118
