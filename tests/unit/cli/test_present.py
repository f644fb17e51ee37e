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


def test_status_lines_end_without_padding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Piped or copied, the table carries no padding spaces and no blank lines at its end; in a foreground `up`
    without a terminal the next message starts on a line of its own."""
    import io

    from rich.console import Console

    from ecflow_remote import status as status_view
    from ecflow_remote.cli.present import StatusLive, status_table
    from ecflow_remote.tunnel.handle import Tunnel

    profile = tmp_path / "p.toml"
    profile.write_text(LOCAL_PROFILE)
    monkeypatch.setenv("COLUMNS", "200")
    out = CliRunner().invoke(main, ["--profile", str(profile), "status"]).output
    lines = out.split("\n")
    assert lines[-1] == "" and lines[-2].strip(), repr(out)  # one newline at the end, after a line with text
    assert [line for line in lines if line != line.rstrip()] == [], repr(out)

    report = status_view.report(Tunnel(profile), live=False)
    screen = io.StringIO()
    with StatusLive(console=Console(file=screen, force_terminal=False, width=200)) as live:
        live.update(status_table(report))
    screen.write("Tunnel down.\n")  # what `up` says next
    lines = screen.getvalue().split("\n")
    assert lines[-2] == "Tunnel down." and "logserver1:9316" in lines[-3], repr(screen.getvalue())
    assert [line for line in lines if line != line.rstrip()] == []


def test_doctor_says_what_to_do_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The advice under a broken link reads as a sentence: never "fix: fix …"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text('#!/bin/sh\necho "OpenSSH_9.2p1 (a stand-in)" >&2\n')
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    profile = tmp_path / "p.toml"
    profile.write_text('[gateway]\nhots = "ws"\n')
    result = CliRunner().invoke(main, ["--profile", str(profile), "doctor"])
    assert result.exit_code == 1, result.output
    assert "FAIL  profile" in result.output and "Did you mean 'host'?" in result.output
    assert "what to do: edit the profile as the line above says" in result.output
    assert "fix: fix" not in result.output
