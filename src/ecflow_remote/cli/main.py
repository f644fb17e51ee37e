"""The `ecflow-remote` command line: parses, calls the library, prints; no logic of its own."""

from __future__ import annotations

from ecflow_remote.cli import init, inspect, launch, nodes, tunnel, web
from ecflow_remote.cli.app import cli

for command in (
    tunnel.up,
    tunnel.down,
    tunnel.status,
    tunnel.login,
    tunnel.doctor,
    inspect.suites,
    inspect.output,
    nodes.node,
    nodes.why,
    launch.run,
    launch.ui,
    web.web,
    web.open_page,
    init.init,
):
    cli.add_command(command)

main = cli

if __name__ == "__main__":
    main()
