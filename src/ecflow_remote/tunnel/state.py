"""What crosses the process boundary between the supervisor and its callers: the tunnel's state and run files.

The supervisor writes a TunnelState to state.json; `up`, `status`, `run`, `ui` and the API read it back. Both ends
use these dataclasses, serialised here and nowhere else, so a field is named once and typed everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ecflow_remote.endpoints import as_method
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.profile.model import Method

Phase = Literal["starting", "up", "reconnecting", "failed", "stopped"]


@dataclass(frozen=True)
class RunFiles:
    """Files the supervisor writes for launched programs (all in the tunnel's 0700 run directory, but
    system_hosts, the system file the opt-in block went into). None: not written for this tunnel."""

    hosts: str | None = None  # the private hosts view (Centre names on loopback)
    resolv: str | None = None  # the view's resolv.conf (the caller's own resolver)
    proxychains: str | None = None  # socks: the private proxychains config (0600: it holds the SOCKS password)
    socks_auth: str | None = None  # socks: the front's user and password for native clients (0600)
    system_hosts: str | None = None  # the system hosts file holding the tunnel's block (system_hosts = true)
    web_auth: str | None = None  # the web proxy's user and password, where no peer check exists (macOS; 0600)

    def merged(self, other: RunFiles) -> RunFiles:
        """These files, with every file `other` names added (or replaced)."""
        return RunFiles(**{**asdict(self), **{k: v for k, v in asdict(other).items() if v is not None}})

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunFiles:
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in (data or {}).items() if k in known and v is not None})


@dataclass(frozen=True)
class Check:
    """Whether one endpoint answered a health check, how fast, and with which version."""

    endpoint: Endpoint
    reachable: bool
    latency_ms: float | None = None
    version: str | None = None
    error: str | None = None
    # Waiting cannot change it (refused or unknown at the far end, a password not read: tunnel/causes.py); `up`
    # stops at once on it.
    lasting: bool = False

    def to_json(self) -> dict[str, Any]:
        data = self.endpoint.to_json()
        data.update({k: v for k, v in asdict(self).items() if k != "endpoint"})
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Check:
        endpoint = Endpoint.from_json(data)
        return cls(
            endpoint,
            bool(data["reachable"]),
            data.get("latency_ms"),
            data.get("version"),
            data.get("error"),
            bool(data.get("lasting")),
        )


@dataclass(frozen=True)
class TunnelState:
    """One tunnel's state as its supervisor last wrote it. Frozen: the supervisor makes each change with
    dataclasses.replace, whose keywords mypy checks (a misspelt field is an error, not a new attribute)."""

    state: Phase
    method: Method
    profile: str
    supervisor_pid: int
    message: str = ""
    pid: int | None = None  # the main ssh leg
    pgids: list[int] = field(default_factory=list)  # every ssh process group (killed after a crash)
    started: float = 0.0
    since: float | None = None  # when `state` last changed
    reconnects: int = 0
    checks: list[Check] = field(default_factory=list)
    plan: Plan | None = None
    files: RunFiles = field(default_factory=RunFiles)
    sessions: dict[str, bool] = field(default_factory=dict)  # whether each hop gives a pty session
    certificate: dict[str, Any] | None = None  # certs.Certificate.to_json() as last read
    warnings: list[str] = field(default_factory=list)  # problems that do not stop the tunnel
    # What carries the forwards now: "agent" (the far-side agent), "plain" (ssh's own channels), or "starting" (ssh's
    # channels while the agent starts, for a moment after `up`).
    transport: str = "plain"
    transport_note: str | None = None  # why plain where the agent was wanted; the agent's python otherwise
    # What carries new connections now: "agent" or "ssh" (its own channels), by the link's round trip measured
    # through ssh (link_rtt, ms: the smallest of the last seconds); None while reconnecting.
    carrier: str | None = None
    link_rtt: float | None = None
    found_note: str | None = None  # found endpoints ssh could not forward, with no agent to carry them (addservices.py)
    found_rounds: int = 0  # how many times the supervisor has looked for log servers in the servers' suites
    web_proxy: str | None = None  # the web proxy's URL (http://127.0.0.1:PORT), for the supervisor's whole life
    web_pac: str | None = None  # its PAC file's URL: the Centre's names to the proxy, the rest DIRECT

    @property
    def transport_text(self) -> str:
        if self.transport == "agent" and self.carrier == "ssh":
            rtt = f"{self.link_rtt:g} ms, " if self.link_rtt is not None else ""
            return f"ssh's own channels (a fast link: {rtt}the far-side agent stands by)"
        return {"agent": "far-side agent", "starting": "far-side agent starting"}.get(
            self.transport, "plain OpenSSH forwards"
        )

    def server_checks(self) -> list[Check]:
        return [c for c in self.checks if c.endpoint.kind == "server"]

    def lasting_failures(self) -> list[Check]:
        """The servers that cannot answer while `up` waits."""
        return [c for c in self.server_checks() if not c.reachable and c.lasting]

    def all_servers_ok(self) -> bool:
        checks = self.server_checks()
        return bool(checks) and all(c.reachable for c in checks)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["checks"] = [c.to_json() for c in self.checks]
        data["plan"] = self.plan.to_json() if self.plan else None
        data["files"] = asdict(self.files)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TunnelState:
        """state.json back into a TunnelState; KeyError/TypeError/ValueError when it is not one."""
        return cls(
            state=data["state"],
            method=as_method(data["method"]),
            profile=str(data["profile"]),
            supervisor_pid=int(data["supervisor_pid"]),
            message=str(data.get("message") or ""),
            pid=data.get("pid"),
            pgids=[int(p) for p in data.get("pgids") or []],
            started=float(data.get("started") or 0.0),
            since=data.get("since"),
            reconnects=int(data.get("reconnects") or 0),
            checks=[Check.from_json(c) for c in data.get("checks") or []],
            plan=Plan.from_json(data["plan"]) if data.get("plan") else None,
            files=RunFiles.from_json(data.get("files")),
            sessions={str(k): bool(v) for k, v in (data.get("sessions") or {}).items()},
            certificate=data.get("certificate"),
            warnings=[str(w) for w in data.get("warnings") or []],
            transport=str(data.get("transport") or "plain"),
            transport_note=data.get("transport_note"),
            carrier=data.get("carrier"),
            link_rtt=data.get("link_rtt"),
            found_note=data.get("found_note"),
            found_rounds=int(data.get("found_rounds") or 0),
            web_proxy=data.get("web_proxy"),
            web_pac=data.get("web_pac"),
        )
