"""ecflow_ui at home as at the Centre (issue 13): settings that stay, the Centre's system server lists, and the
panels that fetch files by ssh — the real ecflow_ui under Xvfb, through the tunnel, the Centre's disk hidden."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.integration.test_ui import display, launch_ui, stop_ui, xdotool

from ecflow_remote.tunnel.rundir import wait_for

__all__ = ["display"]  # the X server fixture, shared with test_ui


def loaded(ui_log: Path, suites: list[str], proc: subprocess.Popen[bytes]) -> bool:
    text = ui_log.read_text(errors="replace")
    return all(re.search(rf"loaded=\[?{s}\b", text) for s in suites) or proc.poll() is not None


def quit_ui(display: str) -> None:
    """File > Quit, as a user would: ecflow_ui saves its session and settings only then (no window manager: the
    main window sits at 0,0, its menu bar at the top)."""
    xdotool(display, "mousemove", "20", "8", "click", "1")
    time.sleep(1)
    xdotool(display, "mousemove", "46", "131", "click", "1")


def test_settings_made_in_one_ui_run_are_there_in_the_next(
    centre: Any, tunnel_up: Any, display: str, tmp_path: Path
) -> None:
    """Run 1 (local method) ends with File > Quit, so ecflow_ui writes its own files in its config dir, and the test
    (standing in for a preference the user set) writes one; run 2 (hosts method: other hosts, other ports) finds
    them all, with the tunnel's rows pointed at the new endpoints, and loads every server."""
    suites = [s.suite for s in centre.servers]
    own = tmp_path / "own"
    own.mkdir()
    confd = tmp_path / "confd"

    tunnel = tunnel_up("local")
    log1 = tmp_path / "ui1.log"
    proc, config = launch_ui(centre, tunnel, display, own, log1, confd)
    try:
        assert config.seeded
        assert {s.name: s.host for s in config.servers} == {s.host: "localhost" for s in centre.servers}
        wait_for(lambda: loaded(log1, suites, proc), 60, 0.5)
        assert proc.poll() is None, log1.read_text(errors="replace")[-3000:]
        (confd / "ecflow-remote-test.txt").write_text("kept")
        quit_ui(display)
        assert proc.wait(30) == 0, log1.read_text(errors="replace")[-3000:]
    finally:
        stop_ui(proc)
    tunnel.down()
    saved = {p.relative_to(confd): p.read_bytes() for p in confd.rglob("*") if p.is_file()}
    # ecflow_ui's own, written when it quit.
    assert Path("default.session/window.conf") in saved and Path("default.session/settings.json") in saved

    tunnel = tunnel_up("hosts")
    log2 = tmp_path / "ui2.log"
    proc, config = launch_ui(centre, tunnel, display, own, log2, confd)
    try:
        assert not config.seeded
        assert {s.name: (s.host, s.port) for s in config.servers} == {s.host: (s.host, s.port) for s in centre.servers}
        for name in ("ecflow-remote-test.txt", "default.session/window.conf", "default.session/settings.json"):
            assert (confd / name).read_bytes() == saved[Path(name)], name
        wait_for(lambda: loaded(log2, suites, proc), 60, 0.5)
        assert proc.poll() is None, log2.read_text(errors="replace")[-3000:]
    finally:
        stop_ui(proc)
    assert list(own.iterdir()) == []
