"""`suites` and `output`: what runs on a server, and a task's job output."""

from __future__ import annotations

import json
import sys

import click

from ecflow_remote.cli.app import POSITIVE_SECONDS, Context, pass_context

# --------------------------------------------------------------------------------------------- suites / output


@click.command()
@click.argument("server")
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Follow changes live (incremental sync, as ecflow_ui); Ctrl-C ends.")
@click.option(
    "--interval", type=POSITIVE_SECONDS, default=1.0, show_default=True, help="Seconds between polls with --watch."
)
@pass_context
def suites(c: Context, server: str, path: str | None, as_json: bool, watch: bool, interval: float) -> None:
    """A server's suites, families and tasks with their states (coloured as in ecflow_ui on a terminal)."""
    import asyncio

    from ecflow_remote import suites as suites_view

    if watch:
        from ecflow_remote.cli.nodes import watch_suites

        if as_json:
            raise click.UsageError("--watch prints text lines; drop --json (or poll `suites --json`)")
        watch_suites(c, server, path, interval)
        return
    tunnel = c.tunnel()
    tree = asyncio.run(suites_view.fetch(tunnel, server, path))
    if as_json:
        click.echo(json.dumps(suites_view.to_json(server, tree), indent=2))
    elif sys.stdout.isatty():
        from rich.console import Console

        from ecflow_remote.cli.present import suite_tree

        Console().print(suite_tree(server, tree))
    else:
        click.echo("\n".join(suites_view.plain_lines(server, tree)))


@click.command()
@click.argument("server")
@click.argument("node")
@click.option(
    "--follow",
    "-f",
    "do_follow",
    is_flag=True,
    help="Keep printing new output until the task is complete or aborted (Ctrl-C ends).",
)
@click.option("--tail", "-n", type=click.IntRange(min=0), help="Only the last N lines.")
@pass_context
def output(c: Context, server: str, node: str, do_follow: bool, tail: int | None) -> None:
    """A task's job output: from its log server through the tunnel, else from its ecFlow server."""
    import asyncio

    from ecflow_remote import output as output_view
    from ecflow_remote.cli.present import ProgressBar

    tunnel = c.tunnel()
    out = sys.stdout.buffer

    def note(message: str) -> None:
        click.echo(f"ecflow-remote: {message}", err=True)

    async def show() -> None:
        source = await output_view.locate(tunnel, server, node)
        if do_follow:
            await output_view.follow(source, out, tail=tail, note=note)
            return
        with ProgressBar() as bar:
            await output_view.read_output(source, out, tail=tail, progress=bar.update, note=note)
        out.flush()

    try:
        asyncio.run(show())
    except KeyboardInterrupt:
        out.flush()
