"""The ssh and scp that `ui`/`run` put first on PATH: ecflow_ui's transfer command lines rewritten to go through
the tunnel as the Centre account."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecflow_remote.profile.load import load_profile
from ecflow_remote.transport import wrapper
from ecflow_remote.transport.wrapper import Spec

SPEC = Spec(
    ssh="/usr/bin/ssh",
    scp="/usr/bin/scp",
    options=["-F", "/cfg", "-o", "ProxyCommand=ssh -S /run/jump.sock -W %h:%p user1@jump"],
    workstation="machine1",
    workstation_port=None,
    user="user1",
    local_user="alice",
)
OURS = [*SPEC.options, "-o", "User=user1"]
ECFLOW_UI = ["-C", "-o", "StrictHostKeyChecking=no", "-o", "PasswordAuthentication=no"]
TAIL = "tail -c 1000 /ecf/machine1.4141.ecf.log"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # ecflow_ui's transfer script, hosts method: $USER (the laptop's name) @ the server's host.
        ([*ECFLOW_UI, "alice@machine2", TAIL], ["/usr/bin/ssh", *ECFLOW_UI, *OURS, "machine2", TAIL]),
        # ... with USER unset in its environment.
        ([*ECFLOW_UI, "@machine1", TAIL], ["/usr/bin/ssh", *ECFLOW_UI, *OURS, "machine1", TAIL]),
        # Local method: the server's host is localhost: the workstation.
        ([*ECFLOW_UI, "alice@localhost", TAIL], ["/usr/bin/ssh", *ECFLOW_UI, *OURS, "machine1", TAIL]),
        # Proxychains mode: ecflow_ui's own SOCKS ProxyCommand (no password) goes; localhost is the workstation.
        (
            [*ECFLOW_UI, "-o", "ProxyCommand=nc -x 127.0.0.1:9050 %h %p", "localhost", TAIL],
            ["/usr/bin/ssh", *ECFLOW_UI, *OURS, "machine1", TAIL],
        ),
        # An explicit other user stays, and the caller's own options come first (ssh takes the first value).
        (
            ["-p2222", "-l", "bob", "bob@machine3", "ls"],
            ["/usr/bin/ssh", "-p2222", "-l", "bob", *OURS, "bob@machine3", "ls"],
        ),
        (["ssh://alice@localhost:2200"], ["/usr/bin/ssh", *OURS[:-2], "-p", "2200", *OURS[-2:], "machine1"]),
        (["-V"], ["/usr/bin/ssh", "-V"]),
    ],
)
def test_ssh_argv(args: list[str], expected: list[str]) -> None:
    assert wrapper.ssh_argv(SPEC, args) == expected


def test_scp_argv() -> None:
    args = ["-C", "-o", "StrictHostKeyChecking=no", "alice@machine1:/ecf/x.log", "/tmp/target"]
    assert wrapper.scp_argv(SPEC, args) == [
        "/usr/bin/scp",
        "-C",
        "-o",
        "StrictHostKeyChecking=no",
        *OURS,
        "--",
        "machine1:/ecf/x.log",
        "/tmp/target",
    ]
    assert wrapper.scp_argv(SPEC, ["localhost:a", "./b:c", "bob@m2:d"])[-3:] == ["machine1:a", "./b:c", "bob@m2:d"]


def test_installed_ssh_runs_the_rewritten_command(tmp_path: Path) -> None:
    """The scripts written in the run dir run this module with the spec: here the real ssh is a stand-in that
    prints its arguments, and whether the profile's password variable reached it (never)."""
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(
        '[gateway]\njump = "user1@jump"\nhost = "user1@machine1"\n\n[[server]]\nname = "m"\nhost = "m"\nport = 1\n'
        'custom_user = "bob"\npassword = "env:ECFR_WRAPPER_PW"\n'
    )
    bin_dir = wrapper.install(load_profile(profile_path), tmp_path)
    assert sorted(p.name for p in bin_dir.iterdir()) == ["scp", "ssh"]
    assert (tmp_path / wrapper.SPEC_FILE).stat().st_mode & 0o777 == 0o600
    echo = tmp_path / "echo-args"
    echo.write_text('#!/bin/sh\necho "PW=${ECFR_WRAPPER_PW-unset}"\nfor a do printf "%s\\n" "$a"; done\n')
    echo.chmod(0o755)
    spec = wrapper.load_spec(tmp_path / wrapper.SPEC_FILE)
    assert spec.user == "user1" and spec.workstation == "machine1"
    assert any(f"-S {tmp_path / 'jump.sock'} -W %h:%p user1@jump" in o for o in spec.options)
    (tmp_path / wrapper.SPEC_FILE).write_text((tmp_path / wrapper.SPEC_FILE).read_text().replace(spec.ssh, str(echo)))
    env = {**os.environ, "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libproxychains.so.4", "PYTHONPATH": "/nowhere"}
    env["ECFR_WRAPPER_PW"] = "s3cret"  # a program that has it (its own doing): the tunnel's ssh still does not
    out = subprocess.run(
        [bin_dir / "ssh", "@localhost", "echo hi"], capture_output=True, text=True, env=env, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[-2:] == ["machine1", "echo hi"] and "User=user1" in lines and lines[0] == "PW=unset"
    assert sys.executable in (bin_dir / "ssh").read_text()
