"""`node`, `why` and `suites --watch`: acting on and following a server as at the Centre."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING

import click

from ecflow_remote.cli.app import Context, pass_context

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import NodeChange
    from ecflow_remote.errors import NodeActionError


# What each action did, as the one line that says so (kill and execute start something; the state follows).
_DONE = {
    "suspend": "Suspended {paths} on {server}.",
    "resume": "Resumed {paths} on {server}.",
    "requeue": "Requeued {paths} on {server}.",
    "execute": "Submitted {paths} on {server} to run now.",
    "complete": "Set {paths} complete on {server}.",
    "abort": "Set {paths} aborted on {server}.",
    "kill": "Asked {server} to kill {paths} (its ECF_KILL_CMD runs; the state follows when the job ends).",
}


def done_line(action: str, server: str, paths: list[str] | tuple[str, ...]) -> str:
    """What a node action changed, on which server (the profile's name), in one line."""
    return _DONE[action].format(paths=", ".join(paths), server=server)


def _error_lines(server: str, e: NodeActionError) -> list[str]:
    """One line per path the error is about, each naming the server as the profile calls it."""
    return [f"ecflow-remote: {server}: {e.action} {path}: {e.reason}" for path in e.paths]


@click.command()
@click.argument("action", type=click.Choice(["suspend", "resume", "requeue", "execute", "complete", "abort", "kill"]))
@click.argument("server")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask (needed for requeue/execute/complete/abort/kill off a terminal)."
)
@pass_context
def node(c: Context, action: str, server: str, paths: tuple[str, ...], yes: bool) -> None:
    """Suspend, resume, requeue, execute (run now), complete, abort or kill nodes: ACTION SERVER PATH..."""
    from ecflow_remote.clients.ecflow import DESTRUCTIVE_ACTIONS, actions
    from ecflow_remote.errors import NodeActionError

    checked = actions.check_action(action)
    bad = [p for p in paths if not p.startswith("/") or p == "/"]
    if bad:
        for path in bad:
            click.echo(
                f"ecflow-remote: {server}: {action} {path}: node paths are absolute, like /suite/family/task", err=True
            )
        sys.exit(2)
    if checked in DESTRUCTIVE_ACTIONS and not yes:
        if not sys.stdin.isatty():
            click.echo(f"ecflow-remote: {action} changes what runs: add --yes to do it without a terminal", err=True)
            sys.exit(2)
        click.confirm(f"{action} {' '.join(paths)} on {server}?", abort=True, err=True)
    client = c.tunnel().ecflow_client(server)
    try:
        import asyncio

        asyncio.run(client.node_action(checked, list(paths)))
    except NodeActionError as e:
        for line in _error_lines(server, e):
            click.echo(line, err=True)
        sys.exit(1)
    click.echo(done_line(checked, server, paths))


@click.command()
@click.argument("server")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def why(c: Context, server: str, path: str, as_json: bool) -> None:
    """Why a node is not running: its trigger, time, limit, parents or the server, from the definition."""
    client = c.tunnel().ecflow_client(server)
    import asyncio

    reasons = asyncio.run(client.why(path))
    if as_json:
        click.echo(json.dumps({"server": server, "path": path, "reasons": reasons}, indent=2))
    elif reasons:
        click.echo("\n".join(reasons))
    else:
        click.echo(f"Nothing holds {path}: it runs at the server's next scan")


def change_line(change: NodeChange) -> str:
    """One plain line per change: easy to grep and follow."""
    name = f" {change.name}" if change.name else ""
    if change.what in ("added", "removed", "attributes") and change.old is None and change.new is None:
        return f"{change.path} {change.what}{name}"
    return f"{change.path} {change.what}{name}: {_value(change.old)} -> {_value(change.new)}"


def _value(value: object) -> str:
    return "-" if value is None else str(value)


def watch_suites(c: Context, server: str, path: str | None, interval: float) -> None:
    """`suites SERVER [PATH] --watch`: the (sub)tree once, then one line per change in it as the server reports it."""
    from ecflow_remote import suites as suites_view

    client = c.tunnel().ecflow_client(server)

    async def follow() -> None:
        async with client.watch(interval) as w:
            tree = w.defs.find(path) if path and path.strip("/") else w.defs
            click.echo("\n".join(suites_view.plain_lines(server, tree)))
            sys.stdout.flush()
            async for update in w:
                stamp = time.strftime("%H:%M:%S")
                if update.full:
                    click.echo(f"{stamp} (whole definition re-read)")
                for change in (ch for ch in update.changes if suites_view.within(path, ch.path)):
                    click.echo(f"{stamp} {change_line(change)}")
                sys.stdout.flush()

    import asyncio

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow())
