"""`run` and `ui`: programs started through the tunnel."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

import click

from ecflow_remote.cli.app import Context, pass_context

if TYPE_CHECKING:
    from ecflow_remote.ui.systemlists import SystemLists

# ---------------------------------------------------------------------------------------------------- run


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--server", help="Set ECF_HOST/ECF_PORT to this server's endpoint.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@pass_context
def run(c: Context, server: str | None, command: tuple[str, ...]) -> None:
    """Run any command through the tunnel: ecflow-remote run [--server NAME] -- CMD ..."""
    from ecflow_remote import programs

    tunnel = c.tunnel()
    code = programs.run_through(tunnel, list(command), server)
    if code != 0:
        from ecflow_remote.errors import TunnelError

        with contextlib.suppress(TunnelError):  # the tunnel went down meanwhile: the program's status stands
            plan = tunnel.plan()
            hint = programs.local_hint(plan, command) or programs.default_server_hint(plan, command, server, os.environ)
            if hint:
                click.echo(f"ecflow-remote: hint: {hint}", err=True)
    sys.exit(code)


# ---------------------------------------------------------------------------------------------------- ui


def system_report(lists: SystemLists) -> list[str]:
    """What became of the Centre's system server lists, in lines for the terminal."""
    if lists.error:
        return [f"warning: {lists.error}; ecflow_ui starts without them"]
    if lists.source == "none":
        return []
    where = "[ui] system_servers" if lists.source == "profile" else "your workstation's ECFLOW_SYSTEM_SERVERS_LIST"
    lines = [f"system server lists ({where}): {len(lists.servers)} servers from {', '.join(lists.paths) or 'none'}"]
    if lists.missing:
        lines.append(f"  not readable on the workstation: {', '.join(lists.missing)}")
    if lists.unreachable:
        lines.append(
            f"  listed, but not carried by this tunnel (see `ecflow-remote status`): {', '.join(lists.unreachable)}"
        )
    return lines


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_context
def ui(c: Context, args: tuple[str, ...]) -> None:
    """Start ecflow_ui with every profile server, through the running tunnel: ecflow-remote ui [-- ARGS]"""
    import signal

    from ecflow_remote.ui import start as ui_start
    from ecflow_remote.uiservers import default_ui_config_dir

    def stop_on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    proc, config = ui_start.launch(c.tunnel(), list(args))
    first = f" (new: a copy of {default_ui_config_dir()})" if config.seeded else ""
    click.echo(f"ecflow_ui's config dir: {config.path}{first}; kept between runs", err=True)
    for line in [*config.notes, *system_report(config.system)]:
        click.echo(line, err=True)
    # A TERM or hang-up of ecflow-remote must take ecflow_ui down too (its config dir stays for the next run).
    old = {sig: signal.signal(sig, stop_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        ui_start.stop(proc)
        code = 130
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    sys.exit(code)
