"""The status report: tunnel state and every endpoint's health, as a dict (for --json) and as a rich table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ecflow_remote.access.passwords import read_passwords

if TYPE_CHECKING:
    from rich.table import Table

    from ecflow_remote.tunnel.supervisor import Tunnel


def report(tunnel: Tunnel, live: bool = True, timeout: float = 3.0) -> dict[str, Any]:
    """Live: check every endpoint now (concurrently); otherwise the supervisor's last checks."""
    state = tunnel.state()
    running = state is not None
    # Problems the supervisor met that do not stop the tunnel (a password it could not read, ...).
    warnings: list[str] = list(state.get("warnings", [])) if state else []
    tunnel_info = {
        "state": state.get("state", "down") if state else "down",
        "method": state.get("method") if state else tunnel.profile.gateway.method,
        "pid": state.get("pid") if state else None,
        "message": state.get("message") if state else "not running: start it with `ecflow-remote up`",
        "since": state.get("since") if state else None,
        "reconnects": state.get("reconnects", 0) if state else 0,
        "profile": str(tunnel.profile.path),
        "certificate": _certificate(tunnel),
        "warnings": warnings,
    }
    if running and live and state and state.get("plan"):
        # Read here too (the supervisor's reading was in its own environment): a password this process cannot read
        # is a warning, and its server's check goes without it.
        passwords, unread = read_passwords(tunnel.profile)
        warnings += [w for w in unread if w not in warnings]
        checks = [c.to_json() for c in tunnel.check(timeout, passwords)]
    elif running and state:
        checks = list(state.get("checks", []))
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


def table(data: dict[str, Any]) -> Table:
    from rich import box
    from rich.table import Table

    t = data["tunnel"]
    colour = {"up": "green", "reconnecting": "yellow", "starting": "yellow"}.get(t["state"], "red")
    title = f"[{colour}]{t['state']}[/] · {t['method']} method · ssh pid {t['pid'] or '-'}"
    if t.get("message") and t["state"] != "up":
        title += f"\n{t['message']}"
    cert = t.get("certificate")
    if cert:
        title += f"\ncertificate: {'[yellow]' if cert.get('warning') else ''}{cert['summary']}"
        if cert.get("warning"):
            title += "[/]"
    problems = [f"warning: {w}" for w in t.get("warnings", [])] + [
        f"{r.get('name') or r['host']}: {r.get('error')}"
        for r in data["servers"] + data["logservers"]
        if not r["reachable"] and r.get("error")
    ]
    table = Table(
        title=title,
        title_justify="left",
        caption="\n".join(problems) or None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for header in ("name", "at the Centre", "here", "answers", "ms", "version"):
        # Addresses never wrap or shorten: a cut port number is worse than a wide table.
        table.add_column(header, justify="right" if header == "ms" else "left", no_wrap=header != "name")
    for rows in (data["servers"], data["logservers"]):
        for r in rows:
            local = f"{r['local_host']}:{r['local_port']}" if r.get("local_host") else "-"
            if r.get("via"):
                local = f"SOCKS {local}"
            table.add_row(
                r.get("name") or r["host"],
                f"{r['host']}:{r['port']}",
                local,
                "[green]yes[/]" if r["reachable"] else "[red]no[/]",
                f"{r['latency_ms']:.1f}" if r.get("latency_ms") is not None else "-",
                r.get("version") or "-",
            )
        table.add_section()
    return table
