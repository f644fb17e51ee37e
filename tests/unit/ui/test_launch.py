"""ecflow_ui's config dir: the server list through the tunnel, the session, the user's files untouched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.profile.load import load_profile
from ecflow_remote.tunnel.state import RunFiles
from ecflow_remote.ui import confdir
from ecflow_remote.ui import launch as ui
from ecflow_remote.ui.servers import read_servers_txt

PROFILE = """\
[gateway]
host = "user1@machine1"
method = "hosts"

[[server]]
name = "machine1"
host = "machine1"
port = 4141

[[server]]
name = "m2"
host = "machine2"
port = 3142
ecflow_user = "user1"
"""


def plan(method: str) -> Plan:
    local = method == "local"
    endpoints = [
        Endpoint("server", "machine1", "machine1", 4141, "127.0.0.1" if local else "127.77.0.1", 4141),
        Endpoint("server", "m2", "machine2", 3142, "127.0.0.1" if local else "127.77.0.2", 40001 if local else 3142),
    ]
    return Plan(method, endpoints, socks_port=9050 if method == "socks" else None)


@pytest.fixture
def profile(tmp_path: Path) -> object:
    path = tmp_path / "p.toml"
    path.write_text(PROFILE)
    return load_profile(path)


def test_fresh_config_lists_and_opens_every_server(tmp_path: Path, profile: object) -> None:
    config = confdir.prepare_config(tmp_path / "run" / "ecflow_ui", profile, plan("hosts"), tmp_path / "none")  # type: ignore[arg-type]
    rows = {s.name: (s.host, s.port, s.user) for s in read_servers_txt(config.path / "servers.txt")}
    # No user column for m2's ecflow_user: ecflow_ui would take it for a custom user wanting a password (the relay
    # presents the name instead).
    assert rows == {"machine1": ("machine1", 4141, ""), "m2": ("machine2", 3142, "")}
    session = json.loads((config.path / "default.session" / "session.json").read_text())
    assert session["window_0"]["tab_0"]["server"] == ["machine1", "m2"]
    assert config.session == "created"
    assert [w["type"] for k, w in session["window_0"]["tab_0"].items() if k.startswith("widget_")] == ["tree", "info"]


def test_local_method_uses_localhost_and_local_ports(tmp_path: Path, profile: object) -> None:
    config = confdir.prepare_config(tmp_path / "ecflow_ui", profile, plan("local"), tmp_path / "none")  # type: ignore[arg-type]
    rows = {s.name: (s.host, s.port) for s in config.servers}
    assert rows == {"machine1": ("localhost", 4141), "m2": ("localhost", 40001)}


def test_users_config_is_copied_never_changed(tmp_path: Path, profile: object) -> None:
    own = tmp_path / "own"
    (own / "default.session").mkdir(parents=True)
    servers = "#Name Host Port Favourite System Ssl user\nmachine1,old,1,1,0,0,me\n"
    servers += "alias2,machine2,3142,0,0,0,\nother,h,5,0,0,0,\n"
    (own / "servers.txt").write_text(servers)
    session = {
        "windowCount": "1",
        "topWindowId": "0",
        "window_0": {"currentTabId": "0", "tab_0": {"server": ["other"]}},
    }
    (own / "default.session" / "session.json").write_text(json.dumps(session))
    (own / "user.settings.json").write_text("{}")
    (own / "x.lock").write_text("")
    before = {p: p.read_bytes() for p in own.rglob("*") if p.is_file()}

    config = confdir.prepare_config(tmp_path / "ecflow_ui", profile, plan("local"), own)  # type: ignore[arg-type]

    assert {p: p.read_bytes() for p in own.rglob("*") if p.is_file()} == before
    rows = [(s.name, s.host, s.port, s.user) for s in read_servers_txt(config.path / "servers.txt")]
    # Same name: through the tunnel, the user's own user kept; same Centre host:port under another name: too;
    # anything else as it was; profile servers not there yet: added.
    assert rows == [
        ("machine1", "localhost", 4141, "me"),
        ("alias2", "localhost", 40001, ""),
        ("other", "h", 5, ""),
        ("m2", "localhost", 40001, ""),
    ]
    assert config.session == "extended"
    written = json.loads((config.path / "default.session" / "session.json").read_text())
    assert written["window_0"]["tab_0"]["server"] == ["other", "machine1", "m2"]
    assert (config.path / "user.settings.json").exists() and not (config.path / "x.lock").exists()


def test_unreadable_session_is_kept(tmp_path: Path, profile: object) -> None:
    own = tmp_path / "own"
    (own / "default.session").mkdir(parents=True)
    (own / "default.session" / "session.json").write_text("not json")
    config = confdir.prepare_config(tmp_path / "ecflow_ui", profile, plan("hosts"), own)  # type: ignore[arg-type]
    assert config.session == "kept"
    assert (config.path / "default.session" / "session.json").read_text() == "not json"


def test_seeding_leaves_no_staging_dir_behind(tmp_path: Path, profile: object) -> None:
    confdir.prepare_config(tmp_path / "ecflow_ui", profile, plan("hosts"), tmp_path / "none")  # type: ignore[arg-type]
    # Only the lock file beside the config dir (the staging copy was renamed into place).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ecflow_ui.lock", "ecflow_ui", "p.toml"]


def test_command_per_method(tmp_path: Path) -> None:
    argv, env = ui.command(tmp_path, plan("hosts"), RunFiles(), ["-title", "x"])
    assert argv[1:] == ["-confd", str(tmp_path), "-title", "x"] and env == {}
    argv, env = ui.command(tmp_path, plan("socks"), RunFiles(proxychains="/run/pc.conf"))
    assert "-pc4" in argv and env == {"PROXYCHAINS_CONF_FILE": "/run/pc.conf"}
    with pytest.raises(ui.UiError, match="proxychains"):
        ui.command(tmp_path, plan("socks"), RunFiles())


def test_a_custom_users_server_gets_no_user_column(tmp_path: Path) -> None:
    """ecflow_ui 5.9: the user column is a server's custom user (its password looked up in ECF_CUSTOM_PASSWD, which
    the UI is not given): a custom user's server gets none (the UI sends its login name, the relay presents the
    custom user and password), the user's own user stays on the other profile server's row, and an inherited
    ECF_USER (which the UI is not given either) goes to the user's own rows that had no user."""
    path = tmp_path / "p.toml"
    path.write_text(PROFILE.replace("port = 4141\n", 'port = 4141\ncustom_user = "bob"\npassword = "env:PW"\n'))
    own = tmp_path / "own"
    own.mkdir()
    (own / "servers.txt").write_text(
        "#Name Host Port Favourite System Ssl user\nmachine1,old,1,1,0,0,me\nm2,old,2,1,0,0,you\nmine,h,3,0,0,0,\n"
    )
    config = confdir.prepare_config(tmp_path / "ecflow_ui", load_profile(path), plan("hosts"), own, env_user="alice")
    rows = {s.name: s.user for s in read_servers_txt(config.path / "servers.txt")}
    assert rows == {"machine1": "", "m2": "you", "mine": "alice"}


def test_a_session_saved_without_servers_gains_the_profiles(tmp_path: Path, profile: object) -> None:
    """ecflow_ui writes a tab without servers as `"server": ""`: still a session to extend, not one to keep."""
    own = tmp_path / "own"
    (own / "default.session").mkdir(parents=True)
    saved = {"windowCount": "1", "topWindowId": "0", "window_0": {"currentTabId": "0", "tab_0": {"server": ""}}}
    (own / "default.session" / "session.json").write_text(json.dumps(saved))
    config = confdir.prepare_config(tmp_path / "ecflow_ui", profile, plan("hosts"), own)  # type: ignore[arg-type]
    assert config.session == "extended"
    written = json.loads((config.path / "default.session" / "session.json").read_text())
    assert written["window_0"]["tab_0"]["server"] == ["machine1", "m2"]


@pytest.mark.parametrize(
    ("env", "args", "platform", "blocked"),
    [
        ({}, [], "linux", True),
        ({"DISPLAY": ""}, [], "linux", True),
        ({"DISPLAY": ":0"}, [], "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, [], "linux", False),
        ({"QT_QPA_PLATFORM": "offscreen"}, [], "linux", False),
        ({}, ["-platform", "offscreen"], "linux", False),
        ({}, [], "darwin", False),
    ],
)
def test_display_problem(env: dict[str, str], args: list[str], platform: str, blocked: bool) -> None:
    problem = ui.display_problem(env, args, platform)
    assert (problem is not None) is blocked
    if problem:
        assert problem.startswith("no display:") and "DISPLAY" in problem and "\n" not in problem


def test_ui_without_a_display_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the tunnel, before ecflow_ui: one line instead of Qt's crash report (exit 134)."""
    from click.testing import CliRunner
    from tests.unit.samples import LOCAL_PROFILE

    from ecflow_remote.cli.main import main

    if not sys.platform.startswith("linux"):
        pytest.skip("Linux: a display is needed there")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "p.toml"
    path.write_text(LOCAL_PROFILE)
    result = CliRunner().invoke(main, ["--profile", str(path), "ui"])
    assert result.exit_code == 1 and result.stderr.startswith("ecflow-remote: no display:"), result.output
    assert result.stderr.count("\n") == 1
