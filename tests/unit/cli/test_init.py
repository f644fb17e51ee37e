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


def test_questions_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ecflow_remote.cli.init._interactive", lambda: True)
    path = tmp_path / "p.toml"
    answers = "user1@machine1\nuser1@jump\nmachine1=machine1:4141\n\nlogserver1\n\nsocks\n"
    code, out = invoke(path, input=answers)
    assert code == 0, out
    profile = load_profile(path)
    assert str(profile.gateway.host) == "user1@machine1" and [str(j) for j in profile.gateway.jump] == ["user1@jump"]
    assert [(s.name, s.port) for s in profile.servers] == [("machine1", 4141)]
    assert [ls.host for ls in profile.logservers] == ["logserver1"]
    assert profile.gateway.method == "socks"


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
