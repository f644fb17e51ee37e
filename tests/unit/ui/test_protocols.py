"""ui with TLS and HTTP servers: the server list's protocol codes, their certificates, and which ecflow_ui runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from tests.unit.ui.test_confdir import local_plan, profile_from
from tests.unit.ui.test_start import PROFILE

from ecflow_remote.errors import UiError
from ecflow_remote.ui import protocols
from ecflow_remote.ui import start as launch
from ecflow_remote.ui.confdir import profile_ui_servers


def _with(protocol1: str, protocol2: str) -> str:
    return PROFILE.replace("port = 4141\n", f'port = 4141\nprotocol = "{protocol1}"\n').replace(
        "port = 3142\n", f'port = 3142\nprotocol = "{protocol2}"\n'
    )


def test_rows_carry_ssl_flag_and_protocol_code(tmp_path: Path) -> None:
    profile = profile_from(tmp_path, _with("ssl", "http"))
    rows = {s.name: s.row() for s in profile_ui_servers(profile, local_plan(5001, 5002))}
    # 5.9 reads column 6 as its ssl flag (1 = ssl), newer releases as the protocol code (1 ssl, 2 http, 3 https).
    assert rows == {"machine1": "machine1,localhost,5001,1,0,1,", "m2": "m2,localhost,5002,1,0,2,"}


def test_tls_certificates_named_after_the_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "ssl"
    home.mkdir()
    monkeypatch.setenv("ECF_SSL_DIR", str(home))
    profile = profile_from(tmp_path, _with("ssl", "plain"))
    with pytest.raises(UiError, match=f"looked for {home}/machine1.4141.crt or {home}/server.crt"):
        protocols.found_certificates(profile)
    (home / "server.crt").write_text("certificate\n")
    found = protocols.found_certificates(profile)
    assert found == {"machine1": home / "server.crt"}
    (tmp_path / "conf").mkdir()
    env = protocols.tls_certificates(tmp_path / "conf", profile, local_plan(5001, 5002), found)
    assert env == {"ECF_SSL_DIR": f"{tmp_path / 'conf' / 'ssl'}/"}
    assert (tmp_path / "conf" / "ssl" / "localhost.5001.crt").read_text() == "certificate\n"
    # ecflow_ui looks for a localhost server's certificate under the machine's host name, or the one it is given.
    assert (tmp_path / "conf" / "ssl" / f"{socket.gethostname()}.5001.crt").read_text() == "certificate\n"
    protocols.tls_certificates(tmp_path / "conf", profile, local_plan(5001, 5002), found, "ui-host")
    assert (tmp_path / "conf" / "ssl" / "ui-host.5001.crt").read_text() == "certificate\n"


def test_old_ecflow_ui_gets_the_certificate_in_its_home(tmp_path: Path) -> None:
    """5.9 reads only $HOME/.ecflowrc/ssl, server.crt first: the certificate goes there under the row's name,
    once; a file of the user's is never replaced, and one in the way is named."""
    profile = profile_from(tmp_path, _with("ssl", "ssl"))
    cert = tmp_path / "machine1.crt"
    cert.write_text("one\n")
    other = tmp_path / "m2.crt"
    other.write_text("two\n")
    found = {"machine1": cert, "m2": other}
    home = tmp_path / "home"
    ssl_dir = home / ".ecflowrc" / "ssl"
    plan = local_plan(5001, 5002)
    notes = protocols.home_certificates(profile, plan, found, home, "ui-host", "5.9.2")
    assert notes == [
        f"put machine1's certificate at {ssl_dir}/ui-host.5001.crt: ecflow_ui 5.9.2 reads certificates only from "
        f"{ssl_dir}",
        f"put m2's certificate at {ssl_dir}/ui-host.5002.crt: ecflow_ui 5.9.2 reads certificates only from {ssl_dir}",
    ]
    assert (ssl_dir / "ui-host.5001.crt").read_text() == "one\n" and (
        ssl_dir / "ui-host.5002.crt"
    ).read_text() == "two\n"
    assert protocols.home_certificates(profile, plan, found, home, "ui-host", "5.9.2") == []  # said once

    (ssl_dir / "ui-host.5002.crt").write_text("stale\n")
    notes = protocols.home_certificates(profile, plan, found, home, "ui-host", "5.9.2")
    assert notes == [
        f"ecflow_ui 5.9.2 takes {ssl_dir}/ui-host.5002.crt for m2, but it is another certificate than {other}: left "
        "as it is, so m2 will not connect in it (ecflow_ui 5.13.6 and later take the one ecflow-remote gives them)"
    ]
    assert (ssl_dir / "ui-host.5002.crt").read_text() == "stale\n"

    (ssl_dir / "server.crt").write_text("one\n")  # 5.9 takes it for every TLS server: right for machine1 only
    notes = protocols.home_certificates(profile, plan, found, home, "ui-host", "5.9.2")
    assert notes == [
        f"ecflow_ui 5.9.2 takes {ssl_dir}/server.crt for m2 (it takes server.crt for every TLS server), but it is "
        f"another certificate than {other}: left as it is, so m2 will not connect in it (ecflow_ui 5.13.6 and later "
        "take the one ecflow-remote gives them)"
    ]
    assert (ssl_dir / "server.crt").read_text() == "one\n"


def test_old_ecflow_ui_names_the_http_servers_it_cannot_reach(tmp_path: Path) -> None:
    profile = profile_from(tmp_path, _with("https", "http"))
    assert protocols.unspoken(profile, (5, 9, 2)) == [
        "ecflow_ui 5.9.2 speaks no HTTP (5.14 and later do): machine1, m2 will not connect in it; name a newer "
        "ecflow_ui with [ui] ecflow_ui in the profile, or use `ecflow-remote web`"
    ]
    assert protocols.unspoken(profile, (5, 19, 0)) == [] and protocols.unspoken(profile, None) == []
    assert protocols.unspoken(profile_from(tmp_path, _with("ssl", "plain")), (5, 9, 2)) == []


def test_ecflow_ui_release_from_its_help(tmp_path: Path) -> None:
    script = tmp_path / "ecflow_ui"
    script.write_text('#!/bin/sh\n[ "$1" = -h ] && [ -z "$DISPLAY" ] && echo "ecFlowUI 5.9.2" && echo "  flags"\n')
    script.chmod(0o755)
    assert protocols.release(str(script), {"DISPLAY": ":9", "PATH": "/usr/bin:/bin"}) == (5, 9, 2)
    assert (5, 9, 2) < protocols.SSL_DIR_SINCE <= (5, 13, 8)
    script.write_text("#!/bin/sh\necho something else\n")
    assert protocols.release(str(script), {}) is None
    assert protocols.release(str(tmp_path / "missing"), {}) is None


def test_first_ecflow_ui_on_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    newer = tmp_path / "bin" / "ecflow_ui"
    newer.parent.mkdir()
    newer.write_text("#!/bin/sh\n")
    newer.chmod(0o755)
    monkeypatch.setenv("PATH", f"{newer.parent}{os.pathsep}/usr/bin")
    assert launch.find_ecflow_ui() == str(newer)
    assert launch.find_ecflow_ui(str(newer)) == str(newer)
    with pytest.raises(UiError, match="is not an executable file"):
        launch.find_ecflow_ui(str(tmp_path / "nope"))
