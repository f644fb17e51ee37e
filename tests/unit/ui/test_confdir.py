"""The profile's persistent ecflow_ui config dir: seeded once, the user's changes kept, the tunnel's rows managed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from tests.unit.ui.test_start import PROFILE

from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile
from ecflow_remote.ui import confdir
from ecflow_remote.uiservers import read_servers_txt

HEADER = "#Name Host Port Favourite System Ssl user\n"


def local_plan(port1: int, port2: int) -> Plan:
    return Plan(
        "local",
        [
            Endpoint("server", "machine1", "machine1", 4141, "127.0.0.1", port1),
            Endpoint("server", "m2", "machine2", 3142, "127.0.0.1", port2),
        ],
    )


def profile_from(tmp_path: Path, text: str = PROFILE) -> Profile:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return load_profile(path)


def rows(config_dir: Path) -> list[tuple[str, str, int]]:
    return [(s.name, s.host, s.port) for s in read_servers_txt(config_dir / "servers.txt")]


def test_the_uis_own_files_stay_and_the_tunnels_rows_follow_the_ports(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "servers.txt").write_text(HEADER + "mine,h,5,0,0,0,\nalias2,machine2,3142,0,0,0,\n")
    dest = tmp_path / "data" / "ecflow_ui"
    profile = profile_from(tmp_path)

    first = confdir.prepare_config(dest, profile, local_plan(4141, 40001), own)
    assert first.seeded and first.session == "created"
    # What ecflow_ui (or the user in it) changes between runs: a preference file, a server added by hand, a tab.
    (dest / "user.default.options").write_text('{"view": "compact"}')
    with open(dest / "servers.txt", "a") as f:
        f.write("byhand,elsewhere,9999,1,0,0,\n")
    session_path = dest / "default.session" / "session.json"
    session = json.loads(session_path.read_text())
    session["window_0"]["tab_0"]["server"].append("byhand")
    session_path.write_text(json.dumps(session))

    second = confdir.prepare_config(dest, profile, local_plan(40007, 40008), own)
    assert not second.seeded
    assert (dest / "user.default.options").read_text() == '{"view": "compact"}'
    # The tunnel's rows (and the user's row standing for m2) moved with the ports; the others are as they were.
    assert rows(dest) == [
        ("mine", "h", 5),
        ("alias2", "localhost", 40008),
        ("machine1", "localhost", 40007),
        ("m2", "localhost", 40008),
        ("byhand", "elsewhere", 9999),
    ]
    assert json.loads(session_path.read_text())["window_0"]["tab_0"]["server"] == ["machine1", "m2", "byhand"]
    assert (own / "servers.txt").read_text() == HEADER + "mine,h,5,0,0,0,\nalias2,machine2,3142,0,0,0,\n"
    assert sorted(p.name for p in own.iterdir()) == ["servers.txt"]


def test_rows_it_added_go_when_the_profile_drops_their_server_but_the_users_stay(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "servers.txt").write_text(HEADER + "machine1,old,1,1,0,0,\n")
    dest = tmp_path / "ecflow_ui"
    confdir.prepare_config(dest, profile_from(tmp_path), local_plan(4141, 40001), own)
    machine1, m2 = PROFILE.split("\n\n[[server]]")[1:]
    gateway = PROFILE.split("\n\n[[server]]")[0]
    # machine1 was the user's row (seeded from their list): it stays when the profile drops it.
    plan = Plan("local", [Endpoint("server", "m2", "machine2", 3142, "127.0.0.1", 40001)])
    confdir.prepare_config(dest, profile_from(tmp_path, f"{gateway}\n\n[[server]]{m2}"), plan, own)
    assert [r[0] for r in rows(dest)] == ["machine1", "m2"]
    # m2 was added by ecflow-remote: it goes when the profile drops it.
    plan = Plan("local", [Endpoint("server", "machine1", "machine1", 4141, "127.0.0.1", 4141)])
    confdir.prepare_config(dest, profile_from(tmp_path, f"{gateway}\n\n[[server]]{machine1}"), plan, own)
    assert [r[0] for r in rows(dest)] == ["machine1"]


def test_two_uis_at_once_both_find_their_rows(tmp_path: Path) -> None:
    """Two prepare_config at once (two `ui` of one profile) serialise on the lock: neither loses the other's file
    nor leaves a half-written one."""
    dest = tmp_path / "ecflow_ui"
    profile = profile_from(tmp_path)
    errors: list[BaseException] = []

    def one(port: int) -> None:
        try:
            confdir.prepare_config(dest, profile, local_plan(port, port + 1), tmp_path / "none")
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=one, args=(41000 + 10 * i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r[0] for r in rows(dest)] == ["machine1", "m2"]
    assert json.loads((dest / confdir.MARKER).read_text())["managed"] == ["m2", "machine1"]


def test_config_dir_is_per_profile_in_the_users_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    a = confdir.config_dir_for(tmp_path / "a.toml")
    assert a.parent == tmp_path / "data" / "ecflow-remote" / "ecflow_ui"
    assert a != confdir.config_dir_for(tmp_path / "b.toml") and a == confdir.config_dir_for(tmp_path / "x/../a.toml")
