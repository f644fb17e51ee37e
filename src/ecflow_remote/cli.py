"""The `ecflow-remote` command line: parses, calls the library, prints; no logic of its own."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ecflow_remote import __version__, cli_web

if TYPE_CHECKING:
    from ecflow_remote.profile import Profile
    from ecflow_remote.tunnel import Tunnel

METHOD_CHOICE = click.Choice(["local", "socks", "hosts"])


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"ecflow-remote: {message}", err=True)
    sys.exit(code)


class Context:
    def __init__(self, profile_path: Path | None) -> None:
        self.profile_path = profile_path

    def profile(self, method: str | None = None) -> Profile:
        from ecflow_remote.profile import load_profile

        profile = load_profile(self.profile_path)
        return profile.with_method(method) if method else profile

    def tunnel(self, method: str | None = None) -> Tunnel:
        from ecflow_remote.tunnel import Tunnel

        return Tunnel(self.profile(method))


class Group(click.Group):
    """Every deliberate error becomes one line on stderr and exit 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from ecflow_remote.errors import EcflowRemoteError

        try:
            return super().invoke(ctx)
        except EcflowRemoteError as e:
            fail(str(e), e.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecflow-remote")
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(path_type=Path),
    envvar="ECFLOW_REMOTE_PROFILE",
    help="Profile file (default: the platform's config dir, or $ECFLOW_REMOTE_PROFILE).",
)
@click.pass_context
def main(ctx: click.Context, profile_path: Path | None) -> None:
    """Reach the Centre's ecFlow servers and log servers from home, through the SSH gateway."""
    ctx.obj = Context(profile_path)


pass_context = click.make_pass_decorator(Context)


# ------------------------------------------------------------------------------------------------- up / down


@main.command()
@click.option("--method", type=METHOD_CHOICE, help="Override the profile's method.")
@click.option("--detach", is_flag=True, help="Return once every server answers; the tunnel stays up.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for every server.")
@click.option(
    "--allow-unreachable", is_flag=True, help="Do not wait for every server: up once the tunnel is, saying which fail."
)
@pass_context
def up(c: Context, method: str | None, detach: bool, timeout: float, allow_unreachable: bool) -> None:
    """Start the tunnel: every server and log server of the profile."""
    tunnel = c.tunnel(method)
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


def _up_with_progress(tunnel: Tunnel, timeout: float, require_all: bool) -> dict[str, Any]:
    if not sys.stderr.isatty():
        return tunnel.up(timeout, require_all=require_all)
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting ssh…") as status:
        return tunnel.up(
            timeout,
            progress=lambda s: status.update(f"{s.get('state', 'starting')}: {s.get('message', '')}"),
            require_all=require_all,
        )


def _print_up(tunnel: Tunnel, state: dict[str, Any]) -> None:
    plan = tunnel.plan()
    click.echo(f"Tunnel up ({plan.method} method, ssh pid {state.get('pid')}).")
    for e in plan.endpoints:
        where = f"{e.local_host}:{e.local_port}" if e.forwarded else f"via SOCKS 127.0.0.1:{plan.socks_port}"
        moved = "" if (not e.forwarded or e.local_port == e.port) else f"  (port {e.port} was taken)"
        click.echo(f"  {e.kind:9} {e.name:20} {e.host}:{e.port} -> {where}{moved}")
    for check in state.get("checks", []):
        if check.get("kind") == "server" and not check.get("reachable"):
            click.echo(f"  not answering: {check['name']} ({check.get('error')})", err=True)


def _follow(tunnel: Tunnel) -> None:
    """Foreground: a live status until Ctrl-C (the caller takes the tunnel down)."""
    from rich.console import Console
    from rich.live import Live

    from ecflow_remote import status as status_view

    with Live(console=Console(), refresh_per_second=2) as live:
        while tunnel.is_running():
            live.update(status_view.table(status_view.report(tunnel, live=False)))
            time.sleep(1)
    click.echo("The tunnel stopped.", err=True)


@main.command()
@pass_context
def down(c: Context) -> None:
    """Stop the tunnel and undo everything `up` did."""
    tunnel = c.tunnel()
    click.echo("Tunnel down." if tunnel.down() else "No tunnel was running (leftovers, if any, removed).")


def _offer_login(profile: Profile) -> None:
    """A missing or expired certificate: offer the login command, only to a person at a terminal."""
    from ecflow_remote import certs

    cert = certs.find(profile)
    if cert is not None and not cert.expired():
        return
    what = "No SSH certificate was found" if cert is None else "Your SSH certificate has expired"
    command = certs.login_command(profile)
    if command is None or not sys.stdin.isatty():
        if cert is not None:
            click.echo(f"{what}: {certs.renew_hint(profile)}.", err=True)
        return
    if click.confirm(f"{what}. Run `{' '.join(command)}` now?", default=True, err=True):
        code = certs.login(profile)
        if code != 0:
            fail(f"the login command exited with status {code}: run it by hand, then `ecflow-remote up`")


@main.command()
@pass_context
def login(c: Context) -> None:
    """Renew the SSH certificate: runs the profile's login command (default `tsh login`) in this terminal."""
    from ecflow_remote import certs

    profile = c.profile()
    code = certs.login(profile)
    if code == 0:
        click.echo(f"Certificate: {certs.summary(profile, certs.find(profile))}")
    sys.exit(code)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", default=8.0, show_default=True, help="Seconds per network check.")
@pass_context
def doctor(c: Context, as_json: bool, timeout: float) -> None:
    """Walk the chain (ssh, profile, certificate, jump, workstation, servers, log servers) to the first broken link."""
    from ecflow_remote import doctor as doc

    report = doc.diagnose(c.profile_path, timeout)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.text())
    sys.exit(0 if report.broken is None else 1)


# -------------------------------------------------------------------------------------------------- status


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", default=3.0, show_default=True, help="Seconds per check.")
@pass_context
def status(c: Context, as_json: bool, timeout: float) -> None:
    """Tunnel state, and whether each server and log server answers now."""
    from ecflow_remote import status as status_view

    report = status_view.report(c.tunnel(), live=True, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console

        Console().print(status_view.table(report))


# --------------------------------------------------------------------------------------------- suites / output


@main.command()
@click.argument("server")
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def suites(c: Context, server: str, path: str | None, as_json: bool) -> None:
    """A server's suites, families and tasks with their states (coloured as in ecflow_ui on a terminal)."""
    import asyncio

    from ecflow_remote import suites as suites_view

    tunnel = c.tunnel()
    tree = asyncio.run(suites_view.fetch(tunnel, server, path))
    if as_json:
        click.echo(json.dumps(suites_view.to_json(server, tree), indent=2))
    elif sys.stdout.isatty():
        from rich.console import Console

        Console().print(suites_view.rich_tree(server, tree))
    else:
        click.echo("\n".join(suites_view.plain_lines(server, tree)))


@main.command()
@click.argument("server")
@click.argument("node")
@click.option("--follow", "-f", "do_follow", is_flag=True, help="Keep printing new output (Ctrl-C ends).")
@click.option("--tail", "-n", type=click.IntRange(min=0), help="Only the last N lines.")
@pass_context
def output(c: Context, server: str, node: str, do_follow: bool, tail: int | None) -> None:
    """A task's job output: from its log server through the tunnel, else from its ecFlow server."""
    from ecflow_remote import output as output_view

    output_view.run(c.tunnel(), server, node, do_follow=do_follow, tail=tail)


# ---------------------------------------------------------------------------------------------------- run


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--server", help="Set ECF_HOST/ECF_PORT to this server's endpoint.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@pass_context
def run(c: Context, server: str | None, command: tuple[str, ...]) -> None:
    """Run any command through the tunnel: ecflow-remote run [--server NAME] -- CMD ..."""
    from ecflow_remote import launch

    sys.exit(launch.run_through(c.tunnel(), list(command), server))


# ---------------------------------------------------------------------------------------------------- ui


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_context
def ui(c: Context, args: tuple[str, ...]) -> None:
    """Start ecflow_ui with every profile server, through the running tunnel: ecflow-remote ui [-- ARGS]"""
    from ecflow_remote import ui as ui_launch

    sys.exit(ui_launch.run(c.tunnel(), list(args)))


# --------------------------------------------------------------------------------------------------- init


def _interactive() -> bool:
    """Questions only for a person at a terminal: scripts and pipes get the flags' values or an error."""
    return sys.stdin.isatty()


@main.command()
@click.option("--jump", help="Jump host(s) as ssh -J takes them: [user@]host[:port], comma-separated.")
@click.option("--host", "host", help="Your workstation at the Centre, the tunnel's far end: [user@]host.")
@click.option("--server", "servers", multiple=True, metavar="NAME=HOST:PORT", help="An ecFlow server (repeatable).")
@click.option("--logserver", "logservers", multiple=True, metavar="HOST[:PORT]", help="A log server (repeatable).")
@click.option("--method", type=METHOD_CHOICE, help="local, socks or hosts (default: hosts on Linux, else local).")
@click.option("--ssh-config", help="The ssh_config file to use (ssh -F).")
@click.option(
    "--import-ui-servers",
    "import_ui",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="[FILE]",
    help="Take the servers from ecflow_ui's servers.txt (default: your own).",
)
@pass_context
def init(
    c: Context,
    jump: str | None,
    host: str | None,
    servers: tuple[str, ...],
    logservers: tuple[str, ...],
    method: str | None,
    ssh_config: str | None,
    import_ui: str | None,
) -> None:
    """Write a new profile from flags (or, on a terminal, a few questions); never overwrites one."""
    import os

    from ecflow_remote import newprofile
    from ecflow_remote.profile import default_profile_path, write_new_profile

    path = c.profile_path or default_profile_path()
    if os.path.lexists(path):
        fail(f"{path}: a profile already exists here; it was left as it is. Edit it, or use --profile PATH.")
    ask = _interactive()
    given = [newprofile.parse_server(s) for s in servers]
    logs = [newprofile.parse_logserver(s) for s in logservers]
    imported = newprofile.Imported()
    if import_ui is not None:
        imported = newprofile.import_ui_servers(None if import_ui == "-" else Path(import_ui))
        for why in imported.skipped:
            click.echo(f"Not imported: {why}", err=True)
    if host is None:
        if not ask:
            fail("--host is required (your workstation at the Centre, e.g. --host user1@machine1)")
        host = click.prompt("Your workstation at the Centre ([user@]host)")
    if jump is None and ask:
        jump = click.prompt("Jump host(s), as ssh -J takes them (empty: none)", default="", show_default=False)
    if ask and not given and not imported.servers:
        while spec := click.prompt("ecFlow server NAME=HOST:PORT (empty: done)", default="", show_default=False):
            given.append(newprofile.parse_server(spec))
    if ask and not logs:
        while spec := click.prompt("Log server HOST[:PORT] (empty: done)", default="", show_default=False):
            logs.append(newprofile.parse_logserver(spec))
    if method is None:
        method = newprofile.default_method()
        if ask:
            method = click.prompt("Method", type=METHOD_CHOICE, default=method)
    text = newprofile.profile_text(
        host=host,
        jump=jump,
        servers=newprofile.combine_servers(given, imported.servers),
        logservers=logs,
        method=method,
        ssh_config=ssh_config,
    )
    write_new_profile(path, text)
    click.echo(f"Wrote {path}.")
    where = f" --profile {path}" if c.profile_path is not None else ""
    click.echo(f"Next: ecflow-remote{where} up   (then: ecflow-remote{where} ui)")


main.add_command(cli_web.web)

if __name__ == "__main__":
    main()
