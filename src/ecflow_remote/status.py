"""The status report: the tunnel's state and every endpoint's health, as plain data (the CLI draws the table)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecflow_remote.tunnel.handle import Tunnel


def report(tunnel: Tunnel, live: bool = True, timeout: float = 3.0) -> dict[str, Any]:
    """Live: check every endpoint now (concurrently); otherwise the supervisor's last checks."""
    state = tunnel.state()
    # Problems the supervisor met that do not stop the tunnel (a password it could not read, ...).
    warnings: list[str] = list(state.warnings) if state else []
    tunnel_info = {
        "state": state.state if state else "down",
        "method": state.method if state else tunnel.profile.gateway.method,
        "pid": state.pid if state else None,
        "message": state.message if state else "not running: start it with `ecflow-remote up`",
        "since": state.since if state else None,
        "reconnects": state.reconnects if state else 0,
        "transport": state.transport if state else None,
        "transport_note": state.transport_note if state else None,
        "transport_text": state.transport_text if state else None,
        "carrier": state.carrier if state else None,  # what carries new connections now: agent | ssh
        "link_rtt_ms": state.link_rtt if state else None,  # the round trip measured through ssh
        "found_note": state.found_note if state else None,
        "profile": str(tunnel.profile.path),
        "certificate": _certificate(tunnel),
        "warnings": warnings,
    }
    if state is not None and live and state.plan is not None:
        checks = [c.to_json() for c in tunnel.check(timeout)]
        # Read here too (the supervisor's reading was in its own environment): a password this process cannot
        # read is a warning, and its server's check goes without it.
        warnings += [w for w in tunnel.password_warnings() if w not in warnings]
    elif state is not None:
        checks = [c.to_json() for c in state.checks]
    else:
        checks = [_unreachable(s.name, s.host, s.port, "server") for s in tunnel.profile.servers]
        checks += [
            _unreachable(f"{lg.host}:{lg.port}", lg.host, lg.port, "logserver") for lg in tunnel.profile.logservers
        ]
    servers = [_row(c) for c in checks if c["kind"] == "server"]
    logservers = [_row(c) for c in checks if c["kind"] == "logserver"]
    for row in logservers:
        row.pop("name", None)
    return {"tunnel": tunnel_info, "servers": servers, "logservers": logservers, "checked": time.time()}


def _unreachable(name: str, host: str, port: int, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "host": host,
        "port": port,
        "local_host": None,
        "local_port": None,
        "reachable": False,
        "latency_ms": None,
        "version": None,
        "error": "tunnel not running",
        "forwarded": True,
    }


def _row(check: dict[str, Any]) -> dict[str, Any]:
    keys = ["name", "host", "port", "local_host", "local_port", "reachable", "latency_ms", "version", "error"]
    row = {k: check.get(k) for k in keys}
    if not check.get("forwarded", True):
        row["via"] = "socks"
    # Not the profile's own: "found" (a log server the servers' suites name) or "system" (a system list's server).
    row["origin"] = check.get("origin") or "profile"
    row["used_by"] = list(check.get("used_by") or [])
    return row


def _certificate(tunnel: Tunnel) -> dict[str, Any] | None:
    """When the gateway certificate ends (read now: a renewal shows at once), with a warning ahead of expiry."""
    from ecflow_remote.access import certs

    cert = certs.find(tunnel.profile)
    if cert is None:
        return None
    data = cert.to_json()
    data["summary"] = certs.summary(tunnel.profile, cert)
    data["warning"] = certs.problem(tunnel.profile, cert) or certs.warning(tunnel.profile, cert)
    return data
