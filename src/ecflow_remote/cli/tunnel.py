"""`up`, `down`, `status`, `login`, `doctor`: the tunnel's life and health."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from ecflow_remote.cli.app import METHOD_CHOICE, POSITIVE_SECONDS, Context, fail, pass_context

if TYPE_CHECKING:
    from ecflow_remote.cli.foreground import Owner
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
    if not detach:
        _foreground(tunnel, timeout, not allow_unreachable)
        return
    state = _up_with_progress(tunnel, timeout, not allow_unreachable)
    _print_up(tunnel, state)
    click.echo("Stop it with: ecflow-remote down")


def _foreground(tunnel: Tunnel, timeout: float, require_all: bool) -> None:
    """The tunnel for as long as this `up` runs: Ctrl-C, a hang-up (the terminal closed) or TERM ends both, and so
    does any other end of this process (an owned tunnel: Tunnel.up)."""
    from ecflow_remote.cli import foreground

    code = 0
    with foreground.owning() as owner:
        try:
            state = _up_with_progress(tunnel, timeout, require_all, owner)
        except foreground.Ended as e:
            if e.signum == signal.SIGINT:
                raise  # as ever: click says "Aborted!" (up() stopped what it started)
            sys.exit(e.exit_code)
        try:
            _print_up(tunnel, state)
            _follow(tunnel, owner)
        except foreground.Ended as e:
            code = e.exit_code
        finally:
            tunnel.down()
            click.echo("Tunnel down.")
    sys.exit(code)


def _already_up(tunnel: Tunnel) -> TunnelState | None:
    """The running tunnel's state when it is this profile's, up, with the method asked for; else None (`up` then
    starts one, or says why it cannot)."""
    state = tunnel.state()
    if state is None or state.state != "up" or state.method != tunnel.profile.gateway.method:
        return None
    return state


def _up_with_progress(tunnel: Tunnel, timeout: float, require_all: bool, owner: Owner | None = None) -> TunnelState:
    """Owner: a foreground `up`'s, whose signals end the start where its progress is shown (up() then stops what
    it started), and whose tunnel ends with this process."""

    def check(_: TunnelState | None) -> None:
        if owner is not None:
            owner.check()

    if not sys.stderr.isatty():
        return tunnel.up(timeout, progress=check, require_all=require_all, owned=owner is not None)
    from rich.console import Console

    console = Console(stderr=True)

    def show(s: TunnelState | None) -> None:
        check(s)
        spinner.update(f"{s.state}: {s.message}" if s else "starting…")

    with console.status("starting ssh…") as spinner:
        return tunnel.up(timeout, progress=show, require_all=require_all, owned=owner is not None)


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


def _follow(tunnel: Tunnel, owner: Owner) -> None:
    """Foreground: a live status until Ctrl-C, a hang-up or TERM (the caller takes the tunnel down)."""
    from rich.console import Console

    from ecflow_remote import status as status_view
    from ecflow_remote.cli import foreground
    from ecflow_remote.cli.present import StatusLive, status_table

    terminal = os.isatty(1)
    with StatusLive(console=Console(), refresh_per_second=2) as live:
        while tunnel.is_running():
            if terminal and foreground.terminal_gone(1):  # hung up, and no hang-up signal reached us
                foreground.hang_up_now()
                raise foreground.Ended(signal.SIGHUP)
            live.update(status_table(status_view.report(tunnel, live=False)))
            owner.sleep(1)
    click.echo("The tunnel stopped.", err=True)


@click.command()
@click.option("--all", "everything", is_flag=True, help="Stop every tunnel of yours, whichever profile started it.")
@pass_context
def down(c: Context, everything: bool) -> None:
    """Stop the tunnel and undo everything `up` did (also while its profile is broken, moved or deleted)."""
    from ecflow_remote.cli import running
    from ecflow_remote.errors import ProfileError

    if everything:
        running.down_all()
        return
    try:
        tunnel = c.tunnel()
    except ProfileError as problem:
        running.down_despite(c, problem)  # the tunnel found by the profile's path, or the problem said
        return
    if tunnel.down():
        click.echo("Tunnel down.")
    else:
        click.echo("No tunnel was running (leftovers, if any, removed).")
        running.others_note(c)


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
@click.option("--all", "everything", is_flag=True, help="Every running tunnel of yours, whichever profile started it.")
@pass_context
def status(c: Context, as_json: bool, timeout: float, everything: bool) -> None:
    """Tunnel state, and whether each server and log server answers now.

    Exit status 0 while the tunnel is up (the table says which servers answer), 3 when it is not: not running,
    starting, reconnecting or failed (as systemctl's for a unit that is not active). With --all: 0 while every
    running tunnel is up, 3 when one is not or none runs."""
    from ecflow_remote import status as status_view
    from ecflow_remote.cli import running
    from ecflow_remote.errors import ProfileError

    if everything:
        reports = running.reports_of_all(timeout)
        _print_reports(reports, as_json)
        sys.exit(0 if reports and all(r["tunnel"]["state"] == "up" for r in reports) else NOT_UP)
    try:
        report = status_view.report(c.tunnel(), live=True, timeout=timeout)
    except ProfileError as problem:
        # A tunnel runs for it all the same: as its supervisor last wrote it, the problem first among its warnings.
        found = running.running_despite(c, problem)
        if found.state is None:
            raise
        report = status_view.recorded(found.state, str(problem))
    _print_reports([report], as_json, single=True)
    if report["tunnel"]["state"] == "down" and not as_json:
        running.others_note(c)
    sys.exit(0 if report["tunnel"]["state"] == "up" else NOT_UP)


def _print_reports(reports: list[dict[str, Any]], as_json: bool, single: bool = False) -> None:
    if as_json:
        click.echo(json.dumps(reports[0] if single else {"tunnels": reports}, indent=2))
        return
    from rich.console import Console

    from ecflow_remote.cli.present import status_table

    console = Console()
    if not single and not reports:
        click.echo("No tunnel is running.")
    for report in reports:
        if not single:
            click.echo(report["tunnel"]["profile"])
        console.print(status_table(report))
