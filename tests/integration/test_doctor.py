"""`ecflow-remote doctor` against the simulated Centre: a healthy chain, then each broken link named."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.profiles import write_profile

PASSWORD = "doc-Pw-91"


@pytest.fixture
def doc_centre(make_centre: Any) -> Any:
    from centre import EcflowServerSpec

    return make_centre(
        servers=(
            EcflowServerSpec("machine1", 4141, "lab", "logserver1", white_list=("user1",)),
            EcflowServerSpec("machine2", 3142, "ops", "logserver2", passwords=(("bob", PASSWORD),)),
        )
    )


def test_doctor_names_each_broken_link(doc_centre: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecflow_remote import doctor

    c = doc_centre
    monkeypatch.setenv("ECFR_DOC_PW", PASSWORD)
    servers = {"machine2": {"custom_user": "bob", "password": "env:ECFR_DOC_PW"}}
    good = write_profile(c, tmp_path / "good.toml", servers, ecflow_user="user1")

    def broken(profile: Path = good) -> str | None:
        report = doctor.diagnose(profile, timeout=5)
        step = report.broken
        assert step is None or step.fix, report.text()
        return step.name if step else None

    healthy = doctor.diagnose(good, timeout=5)
    assert healthy.broken is None, healthy.text()
    names = [s.name for s in healthy.steps]
    for expected in (
        "ssh",
        "profile",
        "certificate",
        "jump",
        "workstation",
        "port machine1",
        "ping machine1",
        "white list machine1",
        "password machine2",
        "logserver logserver2:9316",
        "ecflow_ui",
    ):
        assert expected in names, names

    # Each fault on its own, undone before the next.
    faults: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("jump", lambda: c.stop_sshd("jump"), lambda: c.start_sshd("jump")),
        ("workstation", lambda: c.stop_sshd("machine1"), lambda: c.start_sshd("machine1")),
        ("port machine1", lambda: c.stop_server("machine1"), lambda: c.start_server("machine1")),
        ("logserver logserver2:9316", lambda: c.stop_logserver("logserver2"), lambda: c.start_logserver("logserver2")),
        (
            "password machine2",
            lambda: monkeypatch.setenv("ECFR_DOC_PW", "wrong"),
            lambda: monkeypatch.setenv("ECFR_DOC_PW", PASSWORD),
        ),
    ]
    for name, breaks, mends in faults:
        breaks()
        try:
            assert broken() == name
        finally:
            mends()

    # A password not readable at all: a warning, then the server asked without it refuses (the one rule).
    monkeypatch.delenv("ECFR_DOC_PW")
    try:
        report = doctor.diagnose(good, timeout=5)
    finally:
        monkeypatch.setenv("ECFR_DOC_PW", PASSWORD)
    warned = [s for s in report.steps if s.name == "password machine2" and s.status == "warn"]
    assert warned and "$ECFR_DOC_PW is not set" in warned[0].detail, report.text()
    assert report.broken is not None and report.broken.name == "password machine2", report.text()
    assert "without a password" in report.broken.detail, report.text()

    # A user name the white list refuses (no ecflow_user: the laptop's own login name).
    assert broken(write_profile(c, tmp_path / "nouser.toml", servers)) == "white list machine1"
    # A profile pointing at an ssh_config that is not there.
    missing = write_profile(c, tmp_path / "missing.toml", servers, ecflow_user="user1")
    missing.write_text(missing.read_text().replace(str(c.ssh_config), str(tmp_path / "no_such_config")))
    assert broken(missing) == "profile"
    # An expired certificate.
    c.issue_certificate("+1s")
    time.sleep(2.5)
    try:
        report = doctor.diagnose(good, timeout=5)
        assert report.broken is not None and report.broken.name == "certificate", report.text()
        assert "EXPIRED" in report.broken.detail and "ecflow-remote login" in (report.broken.fix or "")
    finally:
        c.issue_certificate("+12h")
    assert broken() is None


def test_doctor_cli_json(centre: Any, profile_for: Any) -> None:
    profile = profile_for("socks")
    done = subprocess.run(
        [sys.executable, "-m", "ecflow_remote", "--profile", str(profile), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"] and report["broken"] is None, done.stdout + done.stderr
    assert any(s["name"] == "proxychains" and s["status"] == "ok" for s in report["steps"])
    text = subprocess.run(
        [sys.executable, "-m", "ecflow_remote", "--profile", str(profile), "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Every link works." in text.stdout


def test_doctor_checks_the_log_servers_the_suites_name(centre: Any, tmp_path: Path) -> None:
    # A profile naming no log server (the tunnel finds them): doctor finds them in the suites too, and one that does
    # not answer is a warning (`output` still reads through the ecFlow server), not a broken link.
    from ecflow_remote import doctor

    profile = centre.write_profile(tmp_path / "nologservers.toml", "local", logservers=[])
    assert "[[logserver]]" not in profile.read_text()
    report = doctor.diagnose(profile, timeout=5)
    steps = {s.name: s for s in report.steps}
    assert report.broken is None, report.text()
    assert steps["logserver logserver1:9316"].status == "ok", report.text()
    assert "named by machine1 /lab" in steps["logserver logserver1:9316"].detail
    assert "named by machine2 /ops" in steps["logserver logserver2:9316"].detail
    centre.stop_logserver("logserver2")
    try:
        report = doctor.diagnose(profile, timeout=5)
    finally:
        centre.start_logserver("logserver2")
    step = next(s for s in report.steps if s.name == "logserver logserver2:9316")
    assert report.broken is None and step.status == "warn", report.text()
    assert "machine2 /ops" in step.detail and step.fix, report.text()


def test_doctor_checks_what_launched_programs_get(
    doc_centre: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 (1): doctor asks each server the way a program started by `run`/`ui` does (the login name, through
    the running tunnel's endpoint, or rewritten as its relay would), and a program the server would refuse is a
    broken link, never "Every link works."."""
    from ecflow_remote import doctor
    from ecflow_remote.tunnel.handle import Tunnel

    c = doc_centre
    monkeypatch.setenv("ECFR_DOC_PW", PASSWORD)
    monkeypatch.delenv("ECF_USER", raising=False)
    servers = {"machine2": {"custom_user": "bob", "password": "env:ECFR_DOC_PW"}}
    good = write_profile(c, tmp_path / "good.toml", servers, ecflow_user="user1")

    def steps(report: Any) -> dict[str, Any]:
        return {s.name: s for s in report.steps}

    # No tunnel: what the relay would present, through doctor's own probe.
    report = doctor.diagnose(good, timeout=5)
    found = steps(report)
    assert report.broken is None, report.text()
    assert "presented as 'user1'" in found["programs machine1"].detail, report.text()
    assert "presented as custom user 'bob'" in found["programs machine2"].detail, report.text()
    assert PASSWORD not in report.text()

    # A tunnel started where the password could not be read: its relay presents bob without it, so every program
    # is refused by machine2 although doctor's own (native) checks, with the password, pass.
    monkeypatch.delenv("ECFR_DOC_PW")
    tunnel = Tunnel(good)
    try:
        tunnel.up(require_all=False)
        monkeypatch.setenv("ECFR_DOC_PW", PASSWORD)
        host, port = tunnel.endpoint("machine2")
        ping = ["ecflow_client", f"--host={host}", f"--port={port}", "--ping"]
        refused = subprocess.run(
            [sys.executable, "-m", "ecflow_remote", "--profile", str(good), "run", "--", *ping],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0 and "authentication failed" in refused.stdout + refused.stderr
        report = doctor.diagnose(good, timeout=5)
        assert report.broken is not None and report.broken.name == "programs machine2", report.text()
        assert "through the running tunnel" in report.broken.detail and "down" in (report.broken.fix or "")
        assert "Every link works." not in report.text() and steps(report)["password machine2"].status == "ok"
        assert steps(report)["programs machine1"].status == "ok", report.text()
    finally:
        tunnel.down()

    # A tunnel that has the password: every program is accepted, through it.
    tunnel = Tunnel(good)
    try:
        tunnel.up()
        monkeypatch.setenv("ECF_USER", "intruder")  # the user's own: `run` passes it on, so doctor warns
        report = doctor.diagnose(good, timeout=5)
        found = steps(report)
        assert report.broken is None, report.text()
        assert all("through the running tunnel" in found[f"programs {n}"].detail for n in ("machine1", "machine2"))
        assert found["ECF_USER"].status == "warn" and "intruder" in found["ECF_USER"].detail, report.text()
    finally:
        tunnel.down()
