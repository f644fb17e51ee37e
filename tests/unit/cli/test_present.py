"""What the command line draws: the status table of a tunnel that is down says so once."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.unit.samples import LOCAL_PROFILE

from ecflow_remote.cli.main import main


def test_status_of_a_stopped_tunnel_says_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not one "tunnel not running" per server and log server under the title that already says it."""
    profile = tmp_path / "p.toml"
    profile.write_text(LOCAL_PROFILE)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(main, ["--profile", str(profile), "status"])
    assert result.exit_code == 3, result.output  # not up: for scripts
    assert result.output.count("not running") == 1, result.output
    assert "start it with `ecflow-remote up`" in result.output
    # The endpoints are still listed (what `up` would give), answering no.
    assert "machine1:4141" in result.output and "logserver1:9316" in result.output
