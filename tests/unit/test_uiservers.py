"""Tests of ecflow_ui's servers.txt: the exact 5.9 format written, tolerant reading, errors naming the line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ecflow_remote.errors import EcflowRemoteError, UiConfigError
from ecflow_remote.uiservers import (
    HEADER,
    UiServer,
    default_servers_txt,
    default_ui_config_dir,
    read_servers_txt,
    write_servers_txt,
)


def test_write_exact_59_format(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "servers.txt"
    write_servers_txt(
        path,
        [
            UiServer("m1", "localhost", 4141, favourite=True),
            UiServer("m2", "machine2", 3142, system=True, ssl=True, user="user1"),
        ],
    )
    assert path.read_bytes() == (
        b"#Name Host Port Favourite System Ssl user\nm1,localhost,4141,1,0,0,\nm2,machine2,3142,0,1,1,user1\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["servers.txt"]


def test_round_trip(tmp_path: Path) -> None:
    servers = [
        UiServer("m1", "localhost", 4141),
        UiServer("ops server", "ecflow-ops.example.int", 3141, favourite=True, user="ops"),
        UiServer("web", "h", 8080, protocol=3, ssl=True),
    ]
    path = tmp_path / "servers.txt"
    write_servers_txt(path, servers)
    assert read_servers_txt(path) == servers
    # Rewriting replaces the old file.
    write_servers_txt(path, servers[:1])
    assert read_servers_txt(path) == servers[:1]


def test_read_tolerates_variants(tmp_path: Path) -> None:
    path = tmp_path / "servers.txt"
    path.write_bytes(
        b"#Name Host Port Favourite System Ssl user\r\n"
        b"\r\n"
        b"  # a comment, indented\n"
        b"m1,localhost,4141,1,0,0,\r\n"  # Windows line ends
        b"m2,machine2,3142\n"  # fewer fields: the rest default
        b"m3,machine3,3143,1\n"
        b"m4,machine4,3144,0,0,1,user4\n"  # 5.9 ssl flag
        b"m5,machine5,3145,0,0,3,user5\n"  # newer release: protocol code (https)
        b"m6,machine6,3146,0,0,2,user6,extra\n"  # a field from a later release: ignored
        b"m7,machine7,3147,0,0,,\n"  # empty ssl field
        b"   \n"
    )
    assert read_servers_txt(path) == [
        UiServer("m1", "localhost", 4141, favourite=True),
        UiServer("m2", "machine2", 3142),
        UiServer("m3", "machine3", 3143, favourite=True),
        UiServer("m4", "machine4", 3144, ssl=True, user="user4"),
        UiServer("m5", "machine5", 3145, ssl=True, user="user5", protocol=3),
        UiServer("m6", "machine6", 3146, user="user6", protocol=2),
        UiServer("m7", "machine7", 3147),
    ]


def test_protocol_code_survives_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "servers.txt"
    path.write_text("web,h,8080,0,0,2,\n")
    servers = read_servers_txt(path)
    write_servers_txt(path, servers)
    assert path.read_text().splitlines()[1] == "web,h,8080,0,0,2,"


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("justaname", "at least name,host,port"),
        ("m1,localhost", "at least name,host,port"),
        ("m1,localhost,", "'' is not a TCP port"),
        ("m1,localhost,abc", "'abc' is not a TCP port"),
        ("m1,localhost,70000", "'70000' is not a TCP port"),
        ("m1,localhost,0", "'0' is not a TCP port"),
        ("m1,localhost,-1", "'-1' is not a TCP port"),
        (",localhost,4141", "server name is empty"),
        ("m1, ,4141", "host is empty"),
        ("m1,localhost,4141,0,0,x,", "'x' is not an ssl flag"),
        ("m1,localhost,4141,0,0,7,", "7 is not an ssl flag"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, row: str, fragment: str) -> None:
    path = tmp_path / "servers.txt"
    path.write_text(f"{HEADER}\nok,localhost,4141,0,0,0,\n\n{row}\n")
    with pytest.raises(UiConfigError) as info:
        read_servers_txt(path)
    err = info.value
    assert isinstance(err, EcflowRemoteError)
    assert err.path == path
    assert err.line == 4
    assert str(err).startswith(f"{path}:4: ")
    assert fragment in str(err)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UiConfigError, match="no such file"):
        read_servers_txt(tmp_path / "servers.txt")
    with pytest.raises(UiConfigError, match="directory"):
        read_servers_txt(tmp_path)


@pytest.mark.parametrize(
    ("server", "fragment"),
    [
        (UiServer("a,b", "h", 1), "comma"),
        (UiServer("a\nb", "h", 1), "line break"),
        (UiServer("m", "h,x", 1), "comma"),
        (UiServer("m", "h", 1, user="u,v"), "comma"),
        (UiServer("#m", "h", 1), "'#'"),
        (UiServer("", "h", 1), "empty"),
        (UiServer("m", "", 1), "host is empty"),
        (UiServer("m", "h", 0), "not a TCP port"),
    ],
)
def test_write_refuses_what_servers_txt_cannot_hold(tmp_path: Path, server: UiServer, fragment: str) -> None:
    path = tmp_path / "servers.txt"
    with pytest.raises(UiConfigError) as info:
        write_servers_txt(path, [server])
    assert fragment in str(info.value)
    assert not path.exists()


def test_write_refuses_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(UiConfigError, match="unique"):
        write_servers_txt(tmp_path / "servers.txt", [UiServer("m", "h", 1), UiServer("m", "h2", 2)])


def test_default_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECFLOWUI_CONFIG_DIR", str(tmp_path / "ui"))
    assert default_ui_config_dir() == tmp_path / "ui"
    assert default_servers_txt() == tmp_path / "ui" / "servers.txt"
    monkeypatch.delenv("ECFLOWUI_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_ui_config_dir() == tmp_path / ".ecflow_ui_v5"
