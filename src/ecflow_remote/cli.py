"""The `ecflow-remote` command line: parses, calls the library, prints; no logic of its own."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ecflow_remote import __version__

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
@pass_context
def up(c: Context, method: str | None, detach: bool, timeout: float) -> None:
    """Start the tunnel: every server and log server of the profile."""
    tunnel = c.tunnel(method)
    state = _up_with_progress(tunnel, timeout)
    _print_up(tunnel, state)
    if detach:
        click.echo("Stop it with: ecflow-remote down")
        return
    _follow(tunnel)


def _up_with_progress(tunnel: Tunnel, timeout: float) -> dict[str, Any]:
    if not sys.stderr.isatty():
        return tunnel.up(timeout)
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting ssh…") as status:
        return tunnel.up(
            timeout, progress=lambda s: status.update(f"{s.get('state', 'starting')}: {s.get('message', '')}")
        )


def _print_up(tunnel: Tunnel, state: dict[str, Any]) -> None:
    plan = tunnel.plan()
    click.echo(f"Tunnel up ({plan.method} method, ssh pid {state.get('pid')}).")
    for e in plan.endpoints:
        where = f"{e.local_host}:{e.local_port}" if e.forwarded else f"via SOCKS 127.0.0.1:{plan.socks_port}"
        moved = "" if (not e.forwarded or e.local_port == e.port) else f"  (port {e.port} was taken)"
        click.echo(f"  {e.kind:9} {e.name:20} {e.host}:{e.port} -> {where}{moved}")


def _follow(tunnel: Tunnel) -> None:
    """Foreground: a live status until Ctrl-C, then down."""
    from rich.console import Console
    from rich.live import Live

    from ecflow_remote import status as status_view

    console = Console()
    try:
        with Live(console=console, refresh_per_second=2) as live:
            while tunnel.is_running():
                report = status_view.report(tunnel, live=False)
                live.update(status_view.table(report))
                time.sleep(1)
        click.echo("The tunnel stopped.", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        tunnel.down()
        click.echo("Tunnel down.")


@main.command()
@pass_context
def down(c: Context) -> None:
    """Stop the tunnel and undo everything `up` did."""
    tunnel = c.tunnel()
    click.echo("Tunnel down." if tunnel.down() else "No tunnel was running (leftovers, if any, removed).")


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


# ---------------------------------------------------------------------------------------------------- run


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--server", help="Set ECF_HOST/ECF_PORT to this server's endpoint.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@pass_context
def run(c: Context, server: str | None, command: tuple[str, ...]) -> None:
    """Run any command through the tunnel: ecflow-remote run [--server NAME] -- CMD ..."""
    from ecflow_remote import launch

    tunnel = c.tunnel()
    if server is not None:
        tunnel.profile.server(server)
    state = tunnel.state() or {}
    sys.exit(launch.run(list(command), tunnel.plan(), state.get("files", {}), server))


if __name__ == "__main__":
    main()
