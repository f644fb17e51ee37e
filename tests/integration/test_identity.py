"""Issue 19 (1, 8) against the simulated Centre: one program started by `run` reaches a custom-user server, a
white-listed one and an open one, each with its own identity and nothing forced on the others; and no process the
tunnel starts (ssh: the head start's jump master included) or `run` launches holds a password variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.integration.centres import PASSWORD, PASSWORD_ENV, new_text, size
from tests.integration.procs import all_cmdlines, cmdline, pids_naming, ssh_pids
from tests.integration.profiles import write_profile

from ecflow_remote.tunnel.rundir import wait_for

CLI = [sys.executable, "-m", "ecflow_remote"]
SERVERS = (("machine1", 4141, "lab"), ("machine2", 3142, "ops"), ("machine3", 4141, "ext"))
# python3-ecflow (Debian's, for /usr/bin/python3 only), as a user's script: ping and read every server.
ECFLOW_PY = """
import sys, ecflow
for where in sys.argv[1:]:
    host, port = where.split(":")
    client = ecflow.Client(host, int(port))
    client.ping()
    client.sync_local()
    print("python3-ecflow", host, [s.name() for s in client.get_defs().suites])
"""


def environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""  # ended meanwhile: it holds nothing any more


@pytest.mark.parametrize(("method", "transport"), [("hosts", "auto"), ("socks", "agent")])
def test_one_program_reaches_every_server_with_its_own_identity(
    every_identity_centre: Any, tmp_path: Path, method: str, transport: str
) -> None:
    from ecflow_remote.access import relay
    from ecflow_remote.tunnel.handle import Tunnel

    c = every_identity_centre
    me = relay.login_name()
    profile = write_profile(
        c,
        tmp_path / "p.toml",
        {"machine1": {"custom_user": "bob", "password": f"env:{PASSWORD_ENV}"}, "machine2": {"ecflow_user": "user2"}},
        method,
        transport=transport,
    )
    logs = {spec.host: c.server_log(spec) for spec in c.servers}
    tunnel = Tunnel(profile)
    try:
        tunnel.up()
        offsets = {host: size(path) for host, path in logs.items()}
        # One program, the README's way (the Centre's names and ports), no --server: ecflow_client and python3-ecflow
        # on every server, then its own environment.
        script = "set -e\n"
        script += "".join(f"ecflow_client --host {h} --port {p} --ping\n" for h, p, _ in SERVERS)
        script += "".join(f"ecflow_client --host {h} --port {p} --suites\n" for h, p, _ in SERVERS)
        script += '/usr/bin/python3 -c "$1" ' + " ".join(f"{h}:{p}" for h, p, _ in SERVERS) + "\nenv\n"
        done = subprocess.run(
            [*CLI, "--profile", str(profile), "run", "--", "sh", "-c", script, "sh", ECFLOW_PY],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        for host, _, suite in SERVERS:
            assert f"ping server({host}:" in out and f"python3-ecflow {host} ['{suite}']" in out, out
        # Each server saw its own identity, and only its own: nothing forced on the others.
        seen = {host: new_text(path, offsets[host]) for host, path in logs.items()}
        assert ":bob@" in seen["machine1"] and f":{me}@" not in seen["machine1"], seen["machine1"][-2000:]
        assert ":user2@" in seen["machine2"] and f":{me}@" not in seen["machine2"], seen["machine2"][-2000:]
        assert f":{me}@" in seen["machine3"], seen["machine3"][-2000:]
        assert ":bob@" not in seen["machine3"] + seen["machine2"] and ":user2@" not in seen["machine3"]
        assert "authentication failed" not in "".join(seen.values())
        # The program was handed no identity and no password: no ECF_USER, no password file, no password variable.
        env = dict(
            line.split("=", 1) for line in out.splitlines() if "=" in line and line.split("=", 1)[0].isidentifier()
        )
        assert not {"ECF_USER", "ECF_CUSTOM_PASSWD", "ECF_PASSWD", PASSWORD_ENV} & env.keys(), sorted(env)
        assert PASSWORD not in out + done.stderr, "the password was printed"  # (no dump of the output)
        # --server still works, for the custom user's server too.
        one = subprocess.run(
            [*CLI, "--profile", str(profile), "run", "--server", "machine1", "--", "ecflow_client", "--ping"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert one.returncode == 0, one.stdout + one.stderr

        # The password is in no command line and no file of the run directory (the relay holds it in memory).
        assert PASSWORD.encode() not in all_cmdlines()
        for f in tunnel.rundir.path.rglob("*"):
            if f.is_file():
                assert PASSWORD.encode() not in f.read_bytes(), f
    finally:
        tunnel.down()


def test_no_process_of_the_tunnel_holds_a_password_variable(password_centre: Any, tmp_path: Path) -> None:
    """Item 8: the environment of every ssh comes from the profile, so the head start's jump master (started before
    any password is read), the main leg and the far-side agent's ssh hold neither the variable nor the password; the
    supervisor and the log-server finder get the variable through a pipe from `up`, not in their environment (which
    /proc shows for their whole life), and still present the custom user's password."""
    from ecflow_remote.tunnel.handle import Tunnel

    profile = write_profile(
        password_centre,
        tmp_path / "p.toml",
        {"machine1": {"custom_user": "bob", "password": f"env:{PASSWORD_ENV}"}},
        transport="agent",
    )
    tunnel = Tunnel(profile)
    try:
        tunnel.up()
        pids = ssh_pids(tunnel.rundir.path)
        names = [" ".join(cmdline(pid)) for pid in pids]
        assert any("ssh-jump.log" in n for n in names) and any("ssh-main.log" in n for n in names), names
        assert len(pids) >= 3, names  # the agent's ssh too

        # The supervisor and the finder: Python processes naming the profile (not the run dir). The finder starts
        # with the first health round, which may come just after `up` returns.
        def pythons() -> list[int]:
            return [pid for pid in pids_naming(profile) if any("ecflow_remote.tunnel" in a for a in cmdline(pid))]

        assert wait_for(lambda: any("logfinder" in " ".join(cmdline(p)) for p in pythons()), 20), pythons()
        assert len(pythons()) >= 2, pythons()
        for pid in [*pids, *pythons()]:
            held = environ(pid)
            assert b"PATH=" in held, cmdline(pid)  # really read: an environment, not an unreadable file
            clean = f"{PASSWORD_ENV}=".encode() not in held and PASSWORD.encode() not in held
            assert clean, cmdline(pid)  # (a bool: a failure must not print the environment, the password in it)
        # ... and the password still reached the custom user's server (handed over, not lost).
        state = tunnel.state()
        assert state is not None
        [check] = [c for c in state.checks if c.endpoint.name == "machine1"]
        assert check.reachable and check.error is None, check
    finally:
        tunnel.down()
