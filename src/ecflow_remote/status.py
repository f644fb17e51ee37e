"""The status report: the tunnel's state and every endpoint's health, as plain data (the CLI draws the table)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecflow_remote.tunnel.handle import Tunnel
    from ecflow_remote.tunnel.state import TunnelState


def report(tunnel: Tunnel, live: bool = True, timeout: float = 3.0) -> dict[str, Any]:
    """Live: check every endpoint now (concurrently); otherwise the supervisor's last checks."""
    state = tunnel.state()
    info = _info(state, tunnel.profile.gateway.method, str(tunnel.profile.path))
    info["certificate"] = _certificate(tunnel)
    if state is not None and live and state.plan is not None:
        checks = [c.to_json() for c in tunnel.check(timeout)]
        # Read here too (the supervisor's reading was in its own environment): a password this process cannot
        # read is a warning, and its server's check goes without it.
        info["warnings"] += [w for w in tunnel.password_warnings() if w not in info["warnings"]]
    elif state is not None:
        checks = [c.to_json() for c in state.checks]
    else:
        checks = [_unreachable(s.name, s.host, s.port, "server") for s in tunnel.profile.servers]
        checks += [
            _unreachable(f"{lg.host}:{lg.port}", lg.host, lg.port, "logserver") for lg in tunnel.profile.logservers
        ]
    return _report(info, checks, state)


def recorded(state: TunnelState, problem: str) -> dict[str, Any]:
    """A running tunnel whose profile cannot be read now (broken, moved, deleted): as its supervisor last wrote it
    (its last checks; nothing live, which would need the profile's identities), `problem` first among warnings."""
    info = _info(state, state.method, state.profile)
    info["warnings"].insert(0, problem)
    return _report(info, [c.to_json() for c in state.checks], state)


def _info(state: TunnelState | None, method: str, profile: str) -> dict[str, Any]:
    return {
        "state": state.state if state else "down",
        "method": state.method if state else method,
        "pid": state.pid if state else None,
        "message": state.message if state else "not running: start it with `ecflow-remote up`",
        "since": state.since if state else None,
        "reconnects": state.reconnects if state else 0,
        "transport": state.transport if state else None,
        "transport_note": state.transport_note if state else None,
        "transport_text": state.transport_text if state else None,
        "carrier": state.carrier if state else None,  # what carries new connections now: agent | ssh
        "link_rtt_ms": state.link_rtt if state else None,  # the round trip measured through ssh (ms)
        "found_note": state.found_note if state else None,
        "profile": profile,
        "certificate": None,
        # Problems the supervisor met that do not stop the tunnel (a password it could not read, ...).
        "warnings": list(state.warnings) if state else [],
    }


def _report(info: dict[str, Any], checks: list[dict[str, Any]], state: TunnelState | None) -> dict[str, Any]:
    servers = [_row(c) for c in checks if c["kind"] == "server"]
    logservers = [_row(c) for c in checks if c["kind"] == "logserver"]
    for row in logservers:
        row.pop("name", None)
    return {
        "tunnel": info,
        "servers": servers,
        "logservers": logservers,
        # The Centre's web pages: the proxy and its PAC file, while the supervisor runs (access/webproxy.py).
        "web_proxy": state.web_proxy if state else None,
        "web_pac": state.web_pac if state else None,
        "checked": time.time(),
    }


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
