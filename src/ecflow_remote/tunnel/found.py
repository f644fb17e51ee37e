"""Endpoints that join a running tunnel: log servers the profile servers' definitions name (ECF_LOGHOST and
ECF_LOGPORT), and ecFlow servers that only a system server list names (asked for by `ui`).

The typed request `ui` sends the supervisor (inbox.py; where each joins: plan.merge), and the `Finder` that keeps
one incremental watch per profile server (ecflow_ui's news/sync: after the first whole definition a round costs one
small request per server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ecflow_remote.access.socks import Credentials
from ecflow_remote.endpoints import Wanted
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_atomic
from ecflow_remote.tunnel import files
from ecflow_remote.tunnel.state import RunFiles

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import Defs
    from ecflow_remote.clients.ecflow.logservers import LogServerUse
    from ecflow_remote.clients.ecflow.watch import Watch
    from ecflow_remote.tunnel.clients import Clients

REQUEST_PREFIX: Final = "join-"  # request files in the run directory: join-<token>.json
MAX_REQUEST: Final = 1024 * 1024
MAX_SERVERS: Final = 500
FIND_TIMEOUT: Final = 30.0


def logservers_wanted(uses: Sequence[LogServerUse]) -> list[Wanted]:
    """find_logservers' answer as wanted endpoints, each used by "server /suite" pairs."""
    return [
        Wanted("logserver", f"{u.host}:{u.port}", u.host, u.port, tuple(f"{srv} /{suite}" for srv, suite in u.suites))
        for u in uses
    ]


def rewrite_files(
    profile: Profile,
    plan: Plan,
    rundir: Path,
    credentials: Credentials | None,
    old: RunFiles,
) -> tuple[RunFiles, list[str]]:
    """The launched programs' files again for a plan with new names (the hosts view; the opt-in system block):
    programs launched from now on see them. The run files, and problems for the status warnings."""
    run_files = old.merged(files.write_support_files(profile, plan, rundir, credentials))
    if not old.system_hosts:
        return run_files, []
    try:
        added, warnings = files.install_system_hosts(profile, plan, rundir.name)
    except EcflowRemoteError as e:
        return run_files, [f"the names found since up are not in {old.system_hosts}: {e}"]
    return run_files.merged(added), warnings


# ------------------------------------------------------------------------------------------------ requests


def request_path(rundir: Path) -> Path:
    return rundir / f"{REQUEST_PREFIX}{secrets.token_hex(8)}.json"


def request_bytes(servers: Sequence[Wanted]) -> bytes:
    """A request: the version-1 document the supervisor reads (inbox.py, or a request file)."""
    return json.dumps({"version": 1, "servers": [w.to_json() for w in servers]}).encode()


def write_request(rundir: Path, servers: Sequence[Wanted]) -> Path:
    """A request file, for a supervisor from before the inbox (upgraded while it ran: inbox.ask): a 0600 file in
    the 0700 run directory, written whole before it appears under its name; the supervisor removes it once it has
    answered."""
    path = request_path(rundir)
    write_atomic(path, request_bytes(servers), mode=0o600)
    return path


def parse_request(data: bytes) -> list[Wanted]:
    """A request file's servers; ValueError naming what is wrong (the supervisor then warns and drops the file)."""
    if len(data) > MAX_REQUEST:
        raise ValueError(f"over {MAX_REQUEST} bytes")
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("servers"), list):
        raise ValueError("not a version 1 request")
    rows = doc["servers"]
    if len(rows) > MAX_SERVERS:
        raise ValueError(f"over {MAX_SERVERS} servers")
    return [Wanted.from_json(row) for row in rows]


def ask_by_file(
    rundir: Path, servers: Sequence[Wanted], timeout: float = 10.0, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Write a request file and wait until the supervisor has answered it (its state then has the endpoints); False
    if it did not within `timeout`. Only for a supervisor without an inbox (inbox.ask)."""
    if not servers:
        return True
    path = write_request(rundir, servers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if not path.exists():
            return True
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        path.unlink()
    return False


# ------------------------------------------------------------------------------------------------ the finder


class Finder:
    """Learns which log servers the profile servers' definitions name (in a process of its own: logfinder.py): the
    first round fetches each whole definition, later rounds only what changed (a NEWS request when nothing did).
    The last tree of a server that does not answer is kept: a found log server is not forgotten for a restart."""

    def __init__(self) -> None:
        self.watches: dict[str, Watch] = {}
        self.trees: dict[str, Defs] = {}

    async def round(self, clients: Clients, servers: Sequence[str]) -> dict[str, Defs]:
        await asyncio.gather(*(self._poll(clients, name) for name in servers))
        return {name: self.trees[name] for name in servers if name in self.trees}

    async def _poll(self, clients: Clients, name: str) -> None:
        watch = self.watches.get(name)
        try:
            async with asyncio.timeout(FIND_TIMEOUT):
                if watch is None:
                    client = clients.ecflow(name, read_timeout=FIND_TIMEOUT)
                    watch = await client.watch().__aenter__()
                    self.watches[name] = watch
                else:
                    await watch.poll()
        except Exception:  # a server down, refusing or in maintenance: its last tree stands, a new watch next time
            self.watches.pop(name, None)
            return
        self.trees[name] = watch.defs


def uncarried_note(endpoints: Sequence[Endpoint], why: str) -> str:
    """Why found endpoints are not reachable: ssh could not add their forwards (plain transport, no agent)."""
    names = ", ".join(f"{e.host}:{e.port}" for e in endpoints)
    return f"found {names}, which ssh could not forward ({why}); the next round tries again"
