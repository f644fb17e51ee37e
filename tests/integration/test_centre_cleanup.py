"""A Centre whose session was killed without its teardown is cleaned up from another mount view, processes too."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from centre import namespaces, network
from centre.centre import STATE_DIR, cleanup_stale, destroy

REPO = Path(__file__).resolve().parents[2]
# A session of its own: a small Centre, and an ssh client of the how-to's (in no Centre namespace, only in the
# session's mount view), then nothing until it is killed.
SESSION = """
import time
from centre import Centre, howto
from centre.centre import EcflowServerSpec, LogServerSpec

servers = (EcflowServerSpec("machine1", 4141, "lab", "logserver1"),)
c = Centre(servers=servers, logservers=(LogServerSpec("logserver1"),)).up()
howto.local_forward(c).start()
print(c.run_id, flush=True)
time.sleep(600)
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0, reason="network namespaces need Linux and root"
)


def _in_namespaces(netns: set[int], mntns: int) -> list[int]:
    """Every live process in one of those network namespaces or in that mount namespace."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != str(os.getpid()):
            net, mnt = namespaces.ns_inode(entry, "net"), namespaces.ns_inode(entry, "mnt")
            if net in netns or mnt == mntns:
                pids.append(int(entry))
    return pids


def test_a_killed_sessions_centre_leaves_no_process(tmp_path: Path) -> None:
    # Its own mount namespace, private: the Centre's /run/netns names are mounted there only, as in a test session.
    session = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", SESSION],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "session.log", "wb"),  # noqa: SIM115 (the child holds it)
    )
    assert session.stdout is not None
    run_id, netns, mntns = None, set(), -1
    try:
        ready, _, _ = select.select([session.stdout], [], [], 120)
        run_id = session.stdout.readline().decode().strip() if ready else None
        assert run_id, f"the session's Centre did not come up: {(tmp_path / 'session.log').read_text()[-2000:]}"
        state = json.loads((STATE_DIR / f"{run_id}.json").read_text())
        names = network.list_netns(run_id)
        assert sorted(state["netns"]) == sorted(names) and f"{run_id}-jump" in names
        netns = {int(i["inode"]) for i in state["netns"].values()}
        mntns = namespaces.ns_inode(session.pid, "mnt") or -1
        assert state["mntns"] == mntns != namespaces.ns_inode("self", "mnt")
        # What made the leak: from here the names are empty files, so `ip netns pids` finds nothing in them.
        assert network.netns_pids(f"{run_id}-jump") == []
        running = _in_namespaces(netns, mntns)
        assert {namespaces.ns_inode(pid, "net") for pid in running} >= netns - {None}  # sshd, ecflow_server...
        assert any(namespaces.ns_inode(pid, "mnt") == mntns and pid != session.pid for pid in running)  # ssh -L

        session.send_signal(signal.SIGKILL)  # pytest killed by a timeout: no teardown at all
        session.wait(10)
        t0 = time.monotonic()
        assert run_id in cleanup_stale()
        took = time.monotonic() - t0
        left = _in_namespaces(netns, mntns)
        assert left == [], f"left running: {[Path(f'/proc/{p}/cmdline').read_bytes() for p in left]}"
        assert network.list_netns(run_id) == []
        assert not (STATE_DIR / f"{run_id}.json").exists() and not Path(f"/tmp/ecfr-{run_id}").exists()
        assert subprocess.run(["ip", "link", "show", f"{run_id}h"], capture_output=True).returncode != 0
        print(f"cleanup of a killed session's Centre: {took:.2f} s")
    finally:
        # Whatever happened above, nothing of it stays.
        with contextlib.suppress(ProcessLookupError):
            session.kill()
        session.wait(10)
        for pid in _in_namespaces(netns, mntns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if run_id:
            destroy(run_id)
