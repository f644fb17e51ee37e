"""`up`, `down`, `status`, `login`, `doctor`: the tunnel's life and health."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import click

from ecflow_remote.cli.app import METHOD_CHOICE, POSITIVE_SECONDS, Context, fail, pass_context

if TYPE_CHECKING:
    from ecflow_remote.plan import Endpoint, Plan
    from ecflow_remote.profile.model import Profile
    from ecflow_remote.tunnel.handle import Tunnel
    from ecflow_remote.tunnel.state import TunnelState

NOT_UP = 3  # `status`'s exit status when the tunnel is not up (1 and 2 are errors: cli/app.py)


# ------------------------------------------------------------------------------------------------- up / down


@click.command()
@click.option("--method", type=METHOD_CHOICE, help="Override the profile's method.")
@click.option("--detach", is_flag=True, help="Return once every server answers; the tunnel stays up.")
@click.option(
    "--timeout",
    type=POSITIVE_SECONDS,
    default=30.0,
    show_default=True,
    help="Seconds to wait for every server.",
)
@click.option(
    "--allow-unreachable", is_flag=True, help="Do not wait for every server: up once the tunnel is, saying which fail."
)
@pass_context
def up(c: Context, method: str | None, detach: bool, timeout: float, allow_unreachable: bool) -> None:
    """Start the tunnel to the profile's servers and log servers (and to those their suites name)."""
    tunnel = c.tunnel(method)
    if detach and (running := _already_up(tunnel)) is not None:
        # A login script may call `up --detach` every time: the tunnel it wants is there, so that is success.
        click.echo("Already up.")
        _print_up(tunnel, running)
        return
    _offer_login(tunnel.profile)
    state = _up_with_progress(tunnel, timeout, not allow_unreachable)
    if detach:
        _print_up(tunnel, state)
        click.echo("Stop it with: ecflow-remote down")
        return
    try:
        _print_up(tunnel, state)
        _follow(tunnel)
    except KeyboardInterrupt:
        pass
    finally:
        tunnel.down()
        click.echo("Tunnel down.")


def _already_up(tunnel: Tunnel) -> TunnelState | None:
    """The running tunnel's state when it is this profile's, up, with the method asked for; else None (`up` then
    starts one, or says why it cannot)."""
    state = tunnel.state()
    if state is None or state.state != "up" or state.method != tunnel.profile.gateway.method:
        return None
    return state


def _up_with_progress(tunnel: Tunnel, timeout: float, require_all: bool) -> TunnelState:
    if not sys.stderr.isatty():
        return tunnel.up(timeout, require_all=require_all)
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting ssh…") as status:
        return tunnel.up(
            timeout,
            progress=lambda s: status.update(f"{s.state}: {s.message}" if s else "starting…"),
            require_all=require_all,
        )


def _print_up(tunnel: Tunnel, state: TunnelState) -> None:
    plan = tunnel.plan()
    click.echo(f"Tunnel up ({plan.method} method, {state.transport_text}, ssh pid {state.pid}).")
    if state.transport == "plain" and state.transport_note:
        click.echo(f"  note: {state.transport_note}")
    for e in plan.endpoints:
        where = f"{e.local_host}:{e.local_port}" if e.forwarded else f"via SOCKS 127.0.0.1:{plan.socks_port}"
        click.echo(f"  {e.kind:9} {e.name:20} {e.host}:{e.port} -> {where}{_moved(plan, e)}")
    # Log servers too: `up` waits for the ecFlow servers only, and a misspelt log server must not pass unseen.
    for check in state.checks:
        if not check.reachable:
            e = check.endpoint
            if e.kind == "logserver":
                hint = f": check {e.host}:{e.port} in the profile"
                click.echo(f"  not answering: log server {e.name} ({check.error}){hint}", err=True)
            else:
                click.echo(f"  not answering: {e.name} ({check.error})", err=True)


def _moved(plan: Plan, e: Endpoint) -> str:
    """Why an endpoint is not on its own port here: another endpoint of this tunnel has it, or another program."""
    if not e.forwarded or e.local_port == e.port:
        return ""
    for other in plan.endpoints:
        if other is not e and other.forwarded and (other.local_host, other.local_port) == (e.local_host, e.port):
            return f"  (port {e.port} here is {other.name}'s)"
    return f"  (port {e.port} was taken by another program)"


def _follow(tunnel: Tunnel) -> None:
    """Foreground: a live status until Ctrl-C (the caller takes the tunnel down)."""
    from rich.console import Console

    from ecflow_remote import status as status_view
    from ecflow_remote.cli.present import StatusLive, status_table

    with StatusLive(console=Console(), refresh_per_second=2) as live:
        while tunnel.is_running():
            live.update(status_table(status_view.report(tunnel, live=False)))
            time.sleep(1)
    click.echo("The tunnel stopped.", err=True)


@click.command()
@pass_context
def down(c: Context) -> None:
    """Stop the tunnel and undo everything `up` did."""
    tunnel = c.tunnel()
    click.echo("Tunnel down." if tunnel.down() else "No tunnel was running (leftovers, if any, removed).")


def _offer_login(profile: Profile) -> None:
    """A missing or expired certificate: offer the login command, only to a person at a terminal."""
    from ecflow_remote.access import certs

    cert = certs.find(profile)
    if cert is not None and not cert.expired():
        return
    what = "No SSH certificate was found" if cert is None else "Your SSH certificate has expired"
    command = certs.login_command(profile)
    if command is None or not sys.stdin.isatty():
        return  # `up` goes on: if the gateway refuses, its one line says why and how to renew
    if click.confirm(f"{what}. Run `{' '.join(command)}` now?", default=True, err=True):
        code = certs.login(profile)
        if code != 0:
            fail(f"the login command exited with status {code}: run it by hand, then `ecflow-remote up`")


@click.command()
@pass_context
def login(c: Context) -> None:
    """Renew the SSH certificate: runs the profile's login command (default `tsh login`) in this terminal."""
    from ecflow_remote.access import certs

    profile = c.profile()
    code = certs.login(profile)
    if code == 0:
        click.echo(f"Certificate: {certs.summary(profile, certs.find(profile))}")
    sys.exit(code)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", type=POSITIVE_SECONDS, default=8.0, show_default=True, help="Seconds per network check.")
@pass_context
def doctor(c: Context, as_json: bool, timeout: float) -> None:
    """Walk the chain (ssh, profile, certificate, jump, workstation, servers, log servers) to the first broken link."""
    from ecflow_remote import doctor as doc

    report = doc.diagnose(c.profile_path, timeout)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.text())
    sys.exit(0 if report.broken is None else 1)


# -------------------------------------------------------------------------------------------------- status


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", type=POSITIVE_SECONDS, default=3.0, show_default=True, help="Seconds per check.")
@pass_context
def status(c: Context, as_json: bool, timeout: float) -> None:
    """Tunnel state, and whether each server and log server answers now.

    Exit status 0 while the tunnel is up (the table says which servers answer), 3 when it is not: not running,
    starting, reconnecting or failed (as systemctl's for a unit that is not active)."""
    from ecflow_remote import status as status_view

    report = status_view.report(c.tunnel(), live=True, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console

        from ecflow_remote.cli.present import status_table

        Console().print(status_table(report))
    sys.exit(0 if report["tunnel"]["state"] == "up" else NOT_UP)
