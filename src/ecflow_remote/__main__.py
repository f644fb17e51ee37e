"""`python -m ecflow_remote`: the same as the `ecflow-remote` command."""

from ecflow_remote.cli.main import main

main()
