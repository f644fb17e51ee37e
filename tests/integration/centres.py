"""The special Centres more than one test file needs, and proof that a request reached the server meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from centre.centre import EcflowServerSpec, LogServerSpec

from ecflow_remote.clients.ecflow import EcflowClient
from ecflow_remote.tunnel.rundir import wait_for

PASSWORD = "Pw-7x!q2-unique"  # searched for in every process's arguments and every log by the tests using it
PASSWORD_ENV = "ECFR_TEST_PASSWORD"
LOGSERVERS = (LogServerSpec("logserver1"), LogServerSpec("logserver2"))
# Two white-listed servers, each wanting its own Centre name (the laptop's login name is on neither list).
WHITE_LISTED = (
    EcflowServerSpec("machine1", 4141, "lab", "logserver1", white_list=("user1",)),
    EcflowServerSpec("machine2", 3142, "ops", "logserver2", white_list=("user2",)),
)
# machine1 wants custom user bob with PASSWORD; machine2 is open to all.
PASSWORD_BESIDE_PLAIN = (
    EcflowServerSpec("machine1", 4141, "lab", "logserver1", passwords=(("bob", PASSWORD),)),
    EcflowServerSpec("machine2", 3142, "ops", "logserver2"),
)
# One Centre, every identity at once: machine1 admits only custom user bob with PASSWORD, machine2 only user2 (a
# white-list name), machine3 anyone (the laptop's login name).
EVERY_IDENTITY = (
    EcflowServerSpec("machine1", 4141, "lab", "logserver1", white_list=("bob",), passwords=(("bob", PASSWORD),)),
    EcflowServerSpec("machine2", 3142, "ops", "logserver2", white_list=("user2",)),
    EcflowServerSpec("machine3", 4141, "ext", "logserver1"),
)


def new_text(path: Path, offset: int) -> str:
    """What `path` gained after `offset` bytes ('' while it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def assert_ping_reaches(centre: Any, spec: EcflowServerSpec, client: EcflowClient) -> None:
    """`client` pings and `spec`'s own server logs that ping under the client's user name: the endpoint leads to that
    server (not merely to something that answers)."""
    log = centre.server_log(spec)
    offset = size(log)
    client.ping()
    wanted = f":{client.user}@"

    def logged() -> bool:
        return any("--ping" in line and wanted in line for line in new_text(log, offset).splitlines())

    assert wait_for(logged, 5, 0.1), f"{spec.host}'s log shows no ping {wanted}: {new_text(log, offset)[-1500:]!r}"


def settled(tunnel: Any, timeout: float = 20.0) -> Any:
    """The tunnel's state once the far-side agent's start has ended (for a moment after `up`, ssh's own channels
    carry connections while it starts: transport "starting")."""
    from ecflow_remote.tunnel.rundir import wait_for

    assert wait_for(lambda: (s := tunnel.state()) is not None and s.transport != "starting", timeout), tunnel.state()
    return tunnel.state()
