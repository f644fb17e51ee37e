"""`ecflow-remote init` through click's CliRunner: flags, questions, import from ecflow_ui, no overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ecflow_remote.cli.main import main
from ecflow_remote.errors import InitError
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.new import parse_logserver, parse_server


def invoke(profile: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--profile", str(profile), "init", *args], input=input)
    return result.exit_code, result.output


def test_flags_write_a_profile_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p.toml"
    ssh_config = tmp_path / "centre_ssh_config"
    ssh_config.write_text("Host *\n")
    code, out = invoke(
        path,
        "--jump", "user1@jump",
        "--host", "user1@machine1",
        "--server", "m1=machine1:4141",
        "--server", "machine2:3142",
        "--logserver", "logserver1",
        "--logserver", "logserver2:9400",
        "--method", "socks",
        "--ssh-config", str(ssh_config),
    )  # fmt: skip
    assert code == 0, out
    assert f"Wrote {path}" in out and f"--profile {path} up" in out
    profile = load_profile(path)
    assert [(s.name, s.host, s.port) for s in profile.servers] == [
        ("m1", "machine1", 4141),
        ("machine2", "machine2", 3142),
    ]
    assert [(ls.host, ls.port) for ls in profile.logservers] == [("logserver1", 9316), ("logserver2", 9400)]
    assert profile.gateway.method == "socks"
    assert str(profile.gateway.host) == "user1@machine1" and [str(j) for j in profile.gateway.jump] == ["user1@jump"]
    assert profile.gateway.ssh_config is not None and profile.gateway.ssh_config.name == "centre_ssh_config"
    assert path.read_text().startswith("#")  # commented, not a bare dump


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("mine\n")
    code, out = invoke(path, "--host", "machine1", "--server", "m1=machine1:4141")
    assert code == 1 and "already exists" in out
    assert path.read_text() == "mine\n"


def test_import_ui_servers(tmp_path: Path) -> None:
    servers_txt = tmp_path / "servers.txt"
    servers_txt.write_text(
        "#Name Host Port Favourite System Ssl user\nm1,machine1,4141,1,0,0,\nm2,machine2,3142,0,0,0,\n"
        "fwd,localhost,4141,0,0,0,\n"
    )
    path = tmp_path / "p.toml"
    code, out = invoke(path, "--host", "machine1", "--server", "m2=other:1", "--import-ui-servers", str(servers_txt))
    assert code == 0, out
    assert "Not imported: fwd" in out
    # --server wins over an imported row of the same name; loopback rows are not the Centre's hosts.
    assert [(s.name, s.host, s.port) for s in load_profile(path).servers] == [
        ("m2", "other", 1),
        ("m1", "machine1", 4141),
    ]


def test_import_default_servers_txt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    confd = tmp_path / "confd"
    confd.mkdir()
    (confd / "servers.txt").write_text("m9,machine9,4000,0,0,0,\n")
    monkeypatch.setenv("ECFLOWUI_CONFIG_DIR", str(confd))
    path = tmp_path / "p.toml"
    code, out = invoke(path, "--host", "machine1", "--import-ui-servers")
    assert code == 0, out
    assert [s.name for s in load_profile(path).servers] == ["m9"]


def test_not_a_terminal_never_asks(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    code, out = invoke(path, "--server", "m1=machine1:4141", input="machine1\n")
    assert code == 1 and "--host is required" in out
    code, out = invoke(path, "--host", "machine1")
    assert code == 1 and "no ecFlow server" in out
    assert not path.exists()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """init as at a terminal, as the login name `me` (the suggested ecflow_user depends on it)."""
    monkeypatch.setattr("ecflow_remote.cli.init._interactive", lambda: True)
    monkeypatch.setattr("ecflow_remote.unix.login_name", lambda: "me")


def test_questions_on_a_terminal(tmp_path: Path, terminal: None) -> None:
    path = tmp_path / "p.toml"
    # host, jump, ssh config (Enter: ssh's own), ecflow_user (Enter: the suggested user1), a server, done, no custom
    # user, a log server, done, method
    answers = "user1@machine1\nuser1@jump\n\n\nmachine1=machine1:4141\n\n\nlogserver1\n\nsocks\n"
    code, out = invoke(path, input=answers)
    assert code == 0, out
    profile = load_profile(path)
    assert str(profile.gateway.host) == "user1@machine1" and [str(j) for j in profile.gateway.jump] == ["user1@jump"]
    assert [(s.name, s.port) for s in profile.servers] == [("machine1", 4141)]
    assert [ls.host for ls in profile.logservers] == ["logserver1"]
    assert profile.gateway.method == "socks"
    # Skipped: ssh's own config, no custom user; the login name here (me) is not the Centre's (user1).
    assert profile.gateway.ssh_config is None and profile.gateway.ecflow_user == "user1"
    assert profile.servers[0].custom_user is None and profile.servers[0].password is None
    assert "Error" not in out


def test_every_question_re_asks_a_typo_and_lands_in_the_profile(tmp_path: Path, terminal: None) -> None:
    """A mistyped answer costs that answer only: its reason in one line, the question again, every earlier answer
    kept; every question's answer is in the profile, which loads back."""
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n")
    shared_pw = tmp_path / "shared_pw"
    shared_pw.write_text("x\n")
    shared_pw.chmod(0o644)
    own_pw = tmp_path / "own_pw"
    path = tmp_path / "p.toml"
    steps = [
        ("-oProxyCommand=x", "host"),  # typo, then the answer
        ("user1@machine1", None),
        ("a b", "jump"),
        ("user1@jump", None),
        (str(tmp_path / "nope"), "does not exist"),
        (str(config), None),
        ("-x", "not a plain user name"),  # ecflow_user (suggested: user1, as the login name here is `me`)
        ("", None),  # Enter: the suggestion
        ("", "give at least one ecFlow server"),  # no server yet: asked again, not an error at the end
        ("machine1", "expected NAME=HOST:PORT or HOST:PORT"),
        ("m1=machine1:4141", None),
        ("m1=machine9:1", "already a server named 'm1'"),
        ("m2=machine2:3142", None),
        ("", None),  # no more servers
        ("m3", "no server is named 'm3'"),  # custom users: which server
        ("m2", None),
        ("-ops", "not a plain user name"),
        ("ops", None),
        ("hunter2", "unknown password scheme"),  # the password itself: refused, never echoed back
        (f"file:{shared_pw}", "can be read by others"),
        ("env:1X", "environment variable name"),
        (f"file:{own_pw}", None),
        ("", None),  # no other custom user
        ("logserver1:99999", "not a TCP port"),
        ("logserver1", None),
        ("", None),
        ("vpn", "is not one of"),
        ("local", None),
    ]
    code, out = invoke(path, input="".join(f"{answer}\n" for answer, _ in steps))
    assert code == 0, out
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    expected = [why for _, why in steps if why is not None]
    assert len(errors) == len(expected), out
    for line, why in zip(errors, expected, strict=True):
        assert why in line, (line, why)
    assert "hunter2" not in out.replace("never the password itself (empty: none): hunter2", "")
    assert f"Note: {own_pw} does not exist yet" in out and "chmod 600" in out
    profile = load_profile(path)
    assert str(profile.gateway.host) == "user1@machine1" and [str(j) for j in profile.gateway.jump] == ["user1@jump"]
    assert profile.gateway.ssh_config == config
    assert profile.gateway.ecflow_user == "user1"
    assert [(s.name, s.host, s.port, s.custom_user) for s in profile.servers] == [
        ("m1", "machine1", 4141, None),
        ("m2", "machine2", 3142, "ops"),
    ]
    password = profile.servers[1].password
    assert password is not None and (password.kind, password.ref) == ("file", str(own_pw))
    assert [(ls.host, ls.port) for ls in profile.logservers] == [("logserver1", 9316)]
    assert profile.gateway.method == "local"


def test_answers_skip_and_none(tmp_path: Path, terminal: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-` declines the suggested ecflow_user; flags given are not asked again; a relative path is written absolute
    (the profile reads relative paths from its own directory)."""
    path = tmp_path / "sub" / "p.toml"
    answers = "\nrel_config\n-\nm1\nops\nkeyring:centre-ecflow\n\n\n"
    (tmp_path / "rel_config").write_text("")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["init", "--profile", str(path), "--host", "user1@machine1", "--server", "m1=machine1:4141",
               "--method", "hosts"], input=answers,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Jump host" in result.output and "Method" not in result.output and "Another ecFlow" not in result.output
    profile = load_profile(path)
    assert profile.gateway.ssh_config == (tmp_path / "rel_config").resolve()
    assert profile.gateway.ecflow_user is None and profile.gateway.jump == ()
    password = profile.servers[0].password
    assert profile.servers[0].custom_user == "ops" and password is not None
    assert (password.kind, password.ref) == ("keyring", "centre-ecflow")


@pytest.mark.parametrize("host", [["--host", "machine1"], []])
def test_a_wrong_flag_fails_before_any_question(tmp_path: Path, terminal: None, host: list[str]) -> None:
    """Not after the questions, nor blamed on an answer (which would then be asked for ever)."""
    code, out = invoke(tmp_path / "p.toml", *host, "--jump", "a b", input="machine1\n" * 20)
    assert code == 1 and "gateway.jump" in out and "?" not in out and out.count("\n") == 1, out
    assert not (tmp_path / "p.toml").exists()


def test_profile_after_the_subcommand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--profile is the root's option, taken on either side of any command's name."""
    path = tmp_path / "after.toml"
    result = CliRunner().invoke(main, ["init", "--profile", str(path), "--host", "machine1", "--server", "m:1"])
    assert result.exit_code == 0, result.output
    assert f"ecflow-remote --profile {path} up" in result.output
    assert load_profile(path).servers[0].name == "m"
    # Another command, and $ECFLOW_REMOTE_PROFILE: the command line wins over the variable, on either side.
    monkeypatch.setenv("ECFLOW_REMOTE_PROFILE", str(tmp_path / "from-env.toml"))
    missing = tmp_path / "missing.toml"
    for args in (["status", "--profile", str(missing)], ["--profile", str(missing), "status"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and f"{missing}: no profile here" in result.output, result.output
    result = CliRunner().invoke(main, ["--profile", str(path), "status", "--profile", str(missing)])
    assert result.exit_code == 2 and "given twice" in result.output
    result = CliRunner().invoke(main, ["node", "--help"])
    assert "--profile" in result.output


def test_bad_values_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(InitError, match="--server 'm1=machine1'"):
        parse_server("m1=machine1")
    with pytest.raises(InitError, match="not a TCP port"):
        parse_server("m1=machine1:99999")
    with pytest.raises(InitError, match="--logserver"):
        parse_logserver(":9316")
    code, out = invoke(tmp_path / "p.toml", "--host", "-oProxyCommand=x", "--server", "m1=machine1:4141")
    assert code == 1 and "host" in out and not (tmp_path / "p.toml").exists()


@pytest.mark.parametrize("spec", ["machine1", "m1=machine1", ":4141", "m1=:4141", "m1="])
def test_bad_server_names_both_forms(spec: str, tmp_path: Path) -> None:
    """HOST:PORT is accepted too: an error that named only NAME=HOST:PORT sent users the long way round."""
    code, out = invoke(tmp_path / "p.toml", "--host", "machine1", "--server", spec)
    assert code == 1 and "NAME=HOST:PORT or HOST:PORT" in out and not (tmp_path / "p.toml").exists(), out
    assert out.count("\n") == 1


def test_at_a_real_terminal(tmp_path: Path) -> None:
    """The real command on a pty (stdin a terminal: no stand-in for _interactive): a typo is asked again, the
    profile written loads back."""
    import os
    import pty
    import select
    import sys
    import time

    path = tmp_path / "p.toml"
    # (what the question ends with, the answer); the second server answer has a typo and is asked again.
    script = [
        ("([user@]host): ", "centre-user1@machine1"),
        ("(empty: none): ", ""),
        ("then the system's): ", ""),
        ("[centre-user1]: ", "-"),  # the suggested ecflow_user (not the login name here): declined
        ("(or HOST:PORT): ", "machine1=machine1:4141"),
        ("(empty: done): ", "machine2=machine2"),
        ("(empty: done): ", "machine2=machine2:3142"),
        ("(empty: done): ", ""),
        ("its name (empty: none): ", ""),
        ("by themselves): ", ""),
        ("[hosts]: ", "local"),
    ]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, on the pty
        os.execv(sys.executable, [sys.executable, "-m", "ecflow_remote", "--profile", str(path), "init"])
    seen, asked = b"", 0  # asked: where the last question answered ends in `seen`
    try:
        for ending, answer in script:
            deadline = time.monotonic() + 20
            while (at := seen.find(ending.encode(), asked)) < 0:
                assert time.monotonic() < deadline, seen.decode(errors="replace")
                if select.select([fd], [], [], 0.5)[0]:
                    seen += os.read(fd, 4096)
            asked = at + len(ending)
            os.write(fd, f"{answer}\n".encode())
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert text.count("Error: 'machine2=machine2': expected NAME=HOST:PORT or HOST:PORT") == 1, text
    assert f"Wrote {path}." in text
    profile = load_profile(path)
    assert [(s.name, s.port) for s in profile.servers] == [("machine1", 4141), ("machine2", 3142)]
    assert profile.gateway.method == "local" and profile.gateway.ecflow_user is None
