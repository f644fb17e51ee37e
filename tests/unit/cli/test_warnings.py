"""The command line prints the library's password warnings as one line each, beside the error that follows."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ecflow_remote.access.passwords import read_passwords_warned
from ecflow_remote.cli.app import Group
from ecflow_remote.errors import ServerError
from ecflow_remote.profile.load import load_profile


@click.group(cls=Group)
def cli() -> None:
    pass


@cli.command()
@click.argument("profile", type=click.Path(path_type=Path))
def refused(profile: Path) -> None:
    # What suites/output do with a password they cannot read: warn, ask without it, get the server's refusal.
    assert read_passwords_warned(load_profile(profile), ["a"])[0] == {}
    raise ServerError("Authentication failed", "localhost:4141")


def test_warning_then_the_servers_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECFR_CLI_PW", raising=False)
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[gateway]\nhost = "ws"\n[[server]]\nname = "a"\nhost = "m1"\nport = 4141\n'
        'custom_user = "bob"\npassword = "env:ECFR_CLI_PW"\n'
    )
    result = CliRunner().invoke(cli, ["refused", str(profile)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ecflow-remote: warning: server a: password not read, its requests go without one: ")
    assert "$ECFR_CLI_PW is not set" in lines[0]
    assert lines[1] == "ecflow-remote: ecFlow server localhost:4141 answered with an error: Authentication failed"
    assert len(lines) == 2
