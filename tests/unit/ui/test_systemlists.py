"""The Centre's system server lists: ecflow_ui's list format, the script that reads them on the workstation, and
their rewriting for each method."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.unit.ui.test_start import PROFILE, plan

from ecflow_remote.profile.load import load_profile
from ecflow_remote.ui import confdir, systemlists
from ecflow_remote.uiservers import UiServer, read_servers_txt

LIST = """\
# the Centre's servers
machine1  machine1 4141   extra fields ignored
  ops-m2 machine2 3142
bad machine3 notaport
short machine3
far machine9 5000
/other/list
"""


def test_parse_list_reads_as_ecflow_ui_does() -> None:
    rows, includes = systemlists.parse_list(LIST + "far again 1\n")
    assert rows == [("machine1", "machine1", 4141), ("ops-m2", "machine2", 3142), ("far", "machine9", 5000)]
    assert includes == ["/other/list"]


def test_rewrite_gives_profile_servers_their_tunnel_endpoint(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(PROFILE)
    profile = load_profile(tmp_path / "p.toml")
    rows, _ = systemlists.parse_list(LIST)
    servers, unreachable = systemlists.rewrite(rows, profile, plan("local"))
    assert [(s.name, s.host, s.port, s.system) for s in servers] == [
        ("machine1", "localhost", 4141, True),
        ("ops-m2", "localhost", 40001, True),
        ("far", "machine9", 5000, True),
    ]
    assert unreachable == ["far"]
    servers, _ = systemlists.rewrite(rows, profile, plan("hosts"))
    assert [(s.host, s.port) for s in servers] == [("machine1", 4141), ("machine2", 3142), ("machine9", 5000)]
    assert systemlists.format_list(servers, ["/a"]).splitlines()[1:] == [
        "machine1 machine1 4141",
        "ops-m2 machine2 3142",
        "far machine9 5000",
    ]


def run_remote(args: list[str], env: dict[str, str]) -> bytes:
    return subprocess.run(
        ["sh", "-c", systemlists._REMOTE, "sh", *args], capture_output=True, env=env, check=True
    ).stdout


def test_remote_script_sends_each_file_and_the_login_environments_list(tmp_path: Path) -> None:
    """The script the workstation runs (with sh here): files framed by size, unreadable ones marked, and the list
    that a login shell's environment names, whatever the shell prints besides."""
    one = tmp_path / "one"
    one.write_bytes(b"a h 1\nECFR-FILE 99\n")  # the framing cannot be fooled by the contents
    two = tmp_path / "two words"
    two.write_bytes(b"b h 2")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SHELL": "/bin/sh"}
    listed, files = systemlists.parse_reply(run_remote([str(one), str(tmp_path / "none"), str(two)], env), 3, False)
    assert listed is None and files == [b"a h 1\nECFR-FILE 99\n", None, b"b h 2"]
    (tmp_path / ".profile").write_text(f"echo welcome to the Centre\nexport {systemlists.ENV}='{one}:{two}'\n")
    listed, files = systemlists.parse_reply(run_remote(["--login"], env), 0, True)
    assert listed == f"{one}:{two}" and files == [b"a h 1\nECFR-FILE 99\n", b"b h 2"]
    (tmp_path / ".profile").write_text("echo nothing set here\n")
    assert systemlists.parse_reply(run_remote(["--login"], env), 0, True) == ("", [])


def test_system_servers_are_listed_as_such_and_follow_the_lists(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(PROFILE)
    profile = load_profile(tmp_path / "p.toml")
    own = tmp_path / "own"
    own.mkdir()
    (own / "servers.txt").write_text("#h\nmine,h,1,0,0,0,\nfar,myown,2,0,0,0,\n")
    dest = tmp_path / "ecflow_ui"
    listed = [
        UiServer("machine1", "x", 1, system=True),  # a profile server's name: the profile's row stays
        UiServer("far", "machine9", 5000, system=True),  # the user's own row of that name: theirs stays
        UiServer("sys-a", "machine2", 3142, system=True),
    ]
    confdir.prepare_config(dest, profile, plan("hosts"), own, system=listed)
    rows = {s.name: (s.host, s.port, s.system) for s in read_servers_txt(dest / "servers.txt")}
    assert rows == {
        "mine": ("h", 1, False),
        "far": ("myown", 2, False),
        "machine1": ("machine1", 4141, False),
        "m2": ("machine2", 3142, False),
        "sys-a": ("machine2", 3142, True),
    }
    confdir.prepare_config(dest, profile, plan("hosts"), own, system=[UiServer("sys-b", "machine2", 1, system=True)])
    assert [s.name for s in read_servers_txt(dest / "servers.txt")] == ["mine", "far", "machine1", "m2", "sys-b"]
