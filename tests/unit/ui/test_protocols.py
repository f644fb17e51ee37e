"""ui with TLS and HTTP servers: the server list's protocol codes, their certificates, and which ecflow_ui runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from tests.unit.ui.test_confdir import local_plan, profile_from
from tests.unit.ui.test_launch import PROFILE

from ecflow_remote.errors import UiError
from ecflow_remote.ui import launch
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
        launch.tls_certificates(tmp_path / "conf", profile, local_plan(5001, 5002))
    (home / "server.crt").write_text("certificate\n")
    (tmp_path / "conf").mkdir()
    env = launch.tls_certificates(tmp_path / "conf", profile, local_plan(5001, 5002))
    assert env == {"ECF_SSL_DIR": f"{tmp_path / 'conf' / 'ssl'}/"}
    assert (tmp_path / "conf" / "ssl" / "localhost.5001.crt").read_text() == "certificate\n"
    # ecflow_ui looks for a localhost server's certificate under the machine's host name.
    assert (tmp_path / "conf" / "ssl" / f"{socket.gethostname()}.5001.crt").read_text() == "certificate\n"


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
