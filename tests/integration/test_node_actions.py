"""Issue 12 against the simulated Centre: node actions, why, live watch and log servers found in definitions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.profiles import write_profile

from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient, find_logservers
from ecflow_remote.errors import ActionRefused
from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "ecflow_remote"]
PASSWORD = "Nd-4r!x9-actions"
ME = socket.gethostname()


def cli(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--profile", str(profile), *args], capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL
    )


def suspended_by_python3_ecflow(centre: Any, spec: Any, path: str) -> bool:
    code = (
        f"import ecflow\nc = ecflow.Client({spec.host!r}, {spec.port})\nc.sync_local()\n"
        f"print(c.get_defs().find_abs_node({path!r}).is_suspended())"
    )
    return centre.python_in(spec.host, code).strip().splitlines()[-1] == "True"


def test_suspend_resume_why_watch_and_logservers(centre: Any, tunnel_up: Any) -> None:
    tunnel = tunnel_up("local")
    profile = tunnel.profile.path
    spec = centre.server("machine1")
    path = f"/{spec.suite}/f1/hello"

    done = cli(profile, "node", "suspend", "machine1", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Suspended {path} on machine1.\n"  # what changed, on which server
    assert suspended_by_python3_ecflow(centre, spec, path)
    assert wait_for(lambda: f"--suspend {path} :root@{ME}" in centre.server_log(spec).read_text(), 5)
    done = cli(profile, "node", "resume", "machine1", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Resumed {path} on machine1.\n"
    assert not suspended_by_python3_ecflow(centre, spec, path)

    # A missing path: one line naming the server and the path; the existing one was still suspended and resumed.
    done = cli(profile, "node", "suspend", "machine1", f"/{spec.suite}/nope", path)
    assert done.returncode == 1
    assert done.stderr.strip() == f"ecflow-remote: machine1: suspend /{spec.suite}/nope: no such node"
    assert cli(profile, "node", "resume", "machine1", path).returncode == 0
    # Work-throwing actions off a terminal need --yes.
    done = cli(profile, "node", "requeue", "machine1", path)
    assert done.returncode == 2 and "--yes" in done.stderr

    why = cli(profile, "why", "machine1", f"/{spec.suite}/f2/later")
    assert why.returncode == 0 and f"Parent /{spec.suite}/f2 is suspended" in why.stdout.splitlines()

    # Watch through the tunnel: a change arrives as a memento, not as a new whole definition.
    host, port = tunnel.endpoint("machine1")
    client = AsyncEcflowClient(host, port)

    async def watch() -> tuple[list[Any], int, int]:
        async with client.watch(0.2) as w:
            await client.node_action("suspend", path)
            seen = []
            for _ in range(20):
                update = await w.poll()
                seen.extend(update.changes)
                if any(c.path == path and c.what == "suspended" for c in seen):
                    break
                await asyncio.sleep(0.2)
            suspended = w.defs.find(path).suspended
            await client.node_action("resume", path)
            return seen, w.full_syncs, int(suspended)

    seen, full_syncs, suspended = asyncio.run(watch())
    assert any(c.path == path and c.what == "suspended" and c.new is True for c in seen), seen
    assert suspended == 1 and full_syncs == 1

    # `suites --watch` prints the tree, then one line per change.
    follower = subprocess.Popen(
        [*CLI, "--profile", str(profile), "suites", "machine1", "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "machine1  RUNNING"
        time.sleep(1)
        EcflowClient(host, port).node_action("suspend", path)
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and f"{path} suspended" not in line:
            line = follower.stdout.readline()
        assert line.rstrip().endswith(f"{path} suspended: False -> True"), line
    finally:
        follower.terminate()
        follower.wait(10)
        EcflowClient(host, port).node_action("resume", path)

    # `suites SERVER PATH --watch` follows only PATH: one request suspending a node outside it and one inside (the
    # second node's memento carries only cereal's type number) shows just the inside one, without a full re-read.
    family, outside = f"/{spec.suite}/f1", f"/{spec.suite}/f2/later"
    follower = subprocess.Popen(
        [*CLI, "--profile", str(profile), "suites", "machine1", family, "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip().startswith("family f1")
        time.sleep(1)
        EcflowClient(host, port).node_action("suspend", [outside, path])
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout or ()], daemon=True).start()
        seen: list[str] = []
        with contextlib.suppress(queue.Empty):  # a missing line fails below, naming what came
            while not any(f"{path} suspended" in x for x in seen):
                seen.append(lines.get(timeout=30))
        changes = [x.split(" ", 1)[1].rstrip() for x in seen if x[:1].isdigit()]
        assert changes == [f"{path} suspended: False -> True"], seen
    finally:
        follower.terminate()
        follower.wait(10)
        EcflowClient(host, port).node_action("resume", [outside, path])

    # Log servers, from each server's definition only.
    defs = {s.host: EcflowClient(*tunnel.endpoint(s.host)).get_defs() for s in centre.servers}
    found = {(u.host, u.port): u for u in find_logservers(defs)}
    for s in centre.servers:
        assert found[(s.logserver, 9316)].suites == ((s.host, s.suite),)


WHY_SUITE = """\
suite why
  limit lim 0
  family f
    task gate
      defstatus suspended
    task waits
      trigger gate == complete
    task limited
      inlimit /why:lim
    task dated
      date 1.1.2099
  endfamily
endsuite
"""


def test_actions_identity_refusals_and_down(make_centre: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from centre import EcflowServerSpec, LogServerSpec

    from ecflow_remote.tunnel.handle import Tunnel

    m1 = EcflowServerSpec("machine1", 4141, "lab", "logserver1", white_list=("user1",))
    m2 = EcflowServerSpec("machine2", 3142, "ops", "logserver2", passwords=(("bob", PASSWORD),))
    c = make_centre(servers=(m1, m2), logservers=(LogServerSpec("logserver1"), LogServerSpec("logserver2")))
    monkeypatch.setenv("ECFR_TEST_PASSWORD", PASSWORD)
    servers = {
        "machine1": {"ecflow_user": "user1"},
        "machine2": {"custom_user": "bob", "password": "env:ECFR_TEST_PASSWORD"},
    }
    profile = write_profile(c, tmp_path / "p.toml", servers)
    definition = c.ecf_home(m1) / "why.def"
    definition.write_text(WHY_SUITE)
    os.chmod(definition, 0o644)
    c.ecflow_client("machine1", 4141, [f"--load={definition}"])
    c.ecflow_client("machine1", 4141, ["--begin=why"])
    tunnel = Tunnel(profile)

    def state(spec: Any, path: str) -> str:
        return c.ecflow_client(spec.host, spec.port, ["--query", "state", path]).stdout.strip()

    try:
        tunnel.up()
        for spec, user in ((m1, "user1"), (m2, "bob")):
            hello, fails, long = (f"/{spec.suite}/f1/{t}" for t in ("hello", "fails", "long"))
            log = c.server_log(spec)
            steps = [
                (("suspend", hello), f"--suspend {hello}"),
                (("resume", hello), f"--resume {hello}"),
                (("complete", fails), f"--force=complete {fails}"),
                (("abort", hello), f"--force=aborted {hello}"),
                (("requeue", hello), f"--requeue force {hello}"),
                (("execute", hello), f"--run {hello}"),
                (("kill", long), f"--kill {long}"),
            ]
            for (action, path), logged in steps:
                done = cli(profile, "node", action, spec.host, path, "--yes")
                assert done.returncode == 0, (action, done.stderr)
                assert path in done.stdout and spec.host in done.stdout, (action, done.stdout)
                line = f"{logged} :{user}@{ME}"
                assert wait_for(lambda line=line, log=log: line in log.read_text(), 5), line
                if action == "complete":
                    assert state(spec, fails) == "complete"
                if action == "abort":
                    assert state(spec, hello) == "aborted"

        # Refused: a name the white list does not have, a wrong password; each names server and path.
        host, port = tunnel.endpoint("machine1")
        with pytest.raises(ActionRefused, match=r"suspend /lab/f1/hello: refused by the server.*not allowed"):
            EcflowClient(host, port, user="someone").node_action("suspend", "/lab/f1/hello")
        host2, port2 = tunnel.endpoint("machine2")
        with pytest.raises(ActionRefused, match=f"{host2}:{port2}: suspend /ops/f1/hello"):
            EcflowClient(host2, port2, user="bob", custom_user=True, password="wrong").node_action(
                "suspend", "/ops/f1/hello"
            )

        reasons = cli(profile, "why", "machine1", "/why/f/waits").stdout.splitlines()
        assert "/why/f/waits is holding on trigger: gate == complete (gate == complete: /why/f/gate is suspended)" in (
            reasons
        )
        assert (
            "/why/f/limited is holding on limit /why:lim (0 of 0 tokens in use)"
            in cli(profile, "why", "machine1", "/why/f/limited").stdout.splitlines()
        )
        assert "/why/f/dated is holding on date 1.1.2099" in cli(profile, "why", "machine1", "/why/f/dated").stdout
        assert "/why/f/gate is suspended" in cli(profile, "why", "machine1", "/why/f/gate").stdout

        # Down: one line naming the server and the path.
        c.stop_server("machine1")
        done = cli(profile, "node", "suspend", "machine1", "/lab/f1/hello")
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ecflow-remote: machine1: suspend /lab/f1/hello: "), lines
    finally:
        tunnel.down()
