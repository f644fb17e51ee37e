"""The `ecflow-remote` command line: parses, calls the library, prints; no logic of its own."""

from __future__ import annotations

import click

from ecflow_remote import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecflow-remote")
def main() -> None:
    """Reach the Centre's ecFlow servers and log servers from home, through the SSH gateway."""
