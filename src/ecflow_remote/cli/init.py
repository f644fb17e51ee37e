"""`init`: a new profile from flags or a few questions."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ecflow_remote.cli.app import METHOD_CHOICE, Context, fail, pass_context

# --------------------------------------------------------------------------------------------------- init


def _interactive() -> bool:
    """Questions only for a person at a terminal: scripts and pipes get the flags' values or an error."""
    return sys.stdin.isatty()


@click.command()
@click.option("--jump", help="Jump host(s) as ssh -J takes them: [user@]host[:port], comma-separated.")
@click.option("--host", "host", help="Your workstation at the Centre, the tunnel's far end: [user@]host.")
@click.option(
    "--server",
    "servers",
    multiple=True,
    metavar="[NAME=]HOST:PORT",
    help="An ecFlow server (repeatable); without NAME= it is named after its host.",
)
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

    from ecflow_remote.profile import new as newprofile
    from ecflow_remote.profile.load import default_profile_path
    from ecflow_remote.profile.render import write_new_profile

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
