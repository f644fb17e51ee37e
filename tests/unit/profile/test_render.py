"""profile/render.py: new profiles with their comments load back to the same Profile; edits keep the user's text."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ecflow_remote.errors import ProfileError
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Gateway, LogServer, Profile, Server, SshTarget
from ecflow_remote.profile.render import render_profile, set_value, update_profile, write_new_profile

GOOD = '[gateway]\nhost = "user1@machine1"\n\n[[server]]\nname = "m1"\nhost = "machine1"\nport = 4141\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


def test_render_loads_back_to_the_same_profile(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("")
    text = render_profile(
        "user1@jump:2222",
        "user1@machine1",
        [("m1", "machine1", 4141), ('say "hi" – été', "machine2", 3142)],
        [("logserver1", 9316), ("logserver2", 9400)],
        "hosts",
        config,
        "user1",
    )
    path = write(tmp_path, text)
    assert load_profile(path) == Profile(
        path=path,
        gateway=Gateway(
            jump=(SshTarget("user1", "jump", 2222),),
            host=SshTarget("user1", "machine1"),
            ssh_config=config,
            method="hosts",
            ecflow_user="user1",
        ),
        servers=(
            Server("m1", "machine1", 4141, ecflow_user="user1"),
            Server('say "hi" – été', "machine2", 3142, ecflow_user="user1"),
        ),
        logservers=(LogServer("logserver1"), LogServer("logserver2", 9400)),
    )
    # The comments a first-time reader needs, in the places they explain.
    lines = text.splitlines()
    assert lines[0].startswith("# ecflow-remote profile:")
    assert lines.index("[gateway]") < lines.index('method = "hosts"')
    assert lines[lines.index('method = "hosts"') - 1].startswith("#   hosts - ")
    assert "# system_hosts = true" in lines and '# login = "tsh login --proxy=jump.example.int"' in lines
    assert lines[-2:] == ["# [ui]", '# system_servers = ["/path/on/your/workstation/servers"]']
    assert 'host = "logserver2"' in lines and "port = 9400" in lines


def test_render_minimal_round_trip(tmp_path: Path) -> None:
    text = render_profile(None, "machine1", [("m1", "machine1", 4141)], [], "local")
    profile = load_profile(write(tmp_path, text))
    assert profile.gateway.jump == ()
    assert profile.gateway.ssh_config is None
    assert profile.gateway.ecflow_user is None
    assert profile.logservers == ()
    # The commented-out examples are valid once uncommented.
    uncommented = text.replace("# socks_port", "socks_port").replace("# login", "login")
    assert load_profile(write(tmp_path, uncommented.replace("# warn_before", "warn_before"))).gateway.socks_port == 9050
    agent = text.replace("# transport", "transport").replace("# agent_python", "agent_python")
    gateway = load_profile(write(tmp_path, agent)).gateway
    assert (gateway.transport, gateway.agent_python) == ("auto", "/usr/bin/python3")
    assert profile.ui.system_servers is None
    with_ui = text.replace("# [ui]", "[ui]").replace("# system_servers", "system_servers")
    assert load_profile(write(tmp_path, with_ui)).ui.system_servers == ("/path/on/your/workstation/servers",)


def test_render_system_servers(tmp_path: Path) -> None:
    text = render_profile(None, "machine1", [("m1", "machine1", 4141)], [], "hosts", system_servers=["/a/servers"])
    assert load_profile(write(tmp_path, text)).ui.system_servers == ("/a/servers",)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"host": "-oProxyCommand=x"}, "gateway.host"),
        ({"jump": "a b"}, "gateway.jump"),
        ({"servers": [("a,b", "h", 1)]}, "server[1].name"),
        ({"servers": [("m", "h", 70000)]}, "server[1].port"),
        ({"method": "vpn"}, "gateway.method"),
        ({"servers": []}, "server"),
        ({"system_servers": ["relative"]}, "ui.system_servers"),
    ],
)
def test_render_refuses_values_that_would_not_load(kwargs: dict[str, object], key: str) -> None:
    args: dict[str, object] = {
        "jump": None,
        "host": "machine1",
        "servers": [("m1", "machine1", 4141)],
        "logservers": [],
        "method": "local",
    }
    args.update(kwargs)
    with pytest.raises(ProfileError) as info:
        render_profile(**args)  # type: ignore[arg-type]
    assert info.value.key == key
    assert info.value.path is None
    assert str(info.value).startswith(f"{key}: ")


def test_write_new_profile(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "profile.toml"
    old_umask = os.umask(0o077)
    try:
        write_new_profile(path, GOOD)
    finally:
        os.umask(old_umask)
    assert path.read_text() == GOOD
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["profile.toml"]  # no temporary file left


def test_write_new_profile_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text("mine")
    with pytest.raises(ProfileError) as info:
        write_new_profile(path, GOOD)
    assert "--profile" in str(info.value)
    assert path.read_text() == "mine"
    assert os.listdir(tmp_path) == ["profile.toml"]
    # A dangling symlink is "existing" too: writing through it would create a file elsewhere.
    link = tmp_path / "link.toml"
    link.symlink_to(tmp_path / "elsewhere.toml")
    with pytest.raises(ProfileError):
        write_new_profile(link, GOOD)
    assert not (tmp_path / "elsewhere.toml").exists()


# ------------------------------------------------------------------------------------------------ edits

USERS = """# my own notes: keep them
[gateway]
host = 'user1@machine1'   # the workstation under my desk
method = "local"

# servers I watch
[[server]]
name = "m1"
host = "machine1"
port = 4141

[[server]]
name = "m2"  # the second one
host = "machine2"
port = 3142
"""


def test_set_value_keeps_the_users_text() -> None:
    changed = set_value(USERS, "gateway", "method", "hosts")
    assert changed == USERS.replace('method = "local"', 'method = "hosts"')
    # A new key goes after the table's last key, not after the comment that introduces the next table.
    text = set_value(changed, "gateway", "login", "tsh login")
    assert 'method = "hosts"\nlogin = "tsh login"\n\n# servers I watch\n' in text
    assert set_value(text, "gateway", "login", None) == changed
    text = set_value(text, "server", "custom_user", "bob", index=2)
    assert text.endswith('name = "m2"  # the second one\nhost = "machine2"\nport = 3142\ncustom_user = "bob"\n')
    for kept in ("# my own notes: keep them", "host = 'user1@machine1'   # the workstation under my desk"):
        assert kept in text


def test_set_value_names_a_missing_entry() -> None:
    with pytest.raises(ProfileError) as info:
        set_value(USERS, "server", "port", 1, index=3)
    assert info.value.key == "server[3]"
    with pytest.raises(ProfileError, match="TOML syntax error"):
        set_value("[gateway", "gateway", "host", "x")


def test_update_profile_in_place(tmp_path: Path) -> None:
    path = write(tmp_path, USERS)
    path.chmod(0o600)
    update_profile(path, "server", "ecflow_user", "ops", index=1)
    assert load_profile(path).servers[0].ecflow_user == "ops"
    assert "# servers I watch" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the user's mode is kept
    assert os.listdir(tmp_path) == ["profile.toml"]  # no temporary file left


def test_update_profile_refuses_an_edit_that_would_not_load(tmp_path: Path) -> None:
    path = write(tmp_path, USERS)
    with pytest.raises(ProfileError) as info:
        update_profile(path, "server", "port", 70000, index=2)
    assert info.value.key == "server[2].port" and info.value.path == path
    assert info.value.line == USERS.splitlines().index("port = 3142") + 1
    assert path.read_text() == USERS


def test_a_new_key_stops_at_a_multiline_value_and_keeps_trailing_notes() -> None:
    text = '[gateway]\nhost = "m1"\nlist = [\n  "a",\n  # not a trailing comment\n]\n\n# about the end\n'
    changed = set_value(text, "gateway", "method", "hosts")
    assert changed == text.replace("]\n\n", ']\nmethod = "hosts"\n\n')
    # A table whose only lines are comments takes the key under its header.
    assert set_value("[ui]\n# nothing yet\n", "ui", "x", 1).startswith("[ui]\n")
