"""The diagnosis's walk and report, alone: a failed step ends the walk, whichever way it is recorded."""

from __future__ import annotations

import contextlib

import pytest

from ecflow_remote.doctor.report import Step, Stop, Walk


def test_a_failed_step_ends_the_walk_and_is_the_broken_link() -> None:
    walk = Walk()
    walk.ok("ssh", "/usr/bin/ssh")
    walk.add(Step("jump", "warn", "connected but ran no command"))
    with pytest.raises(Stop):
        walk.add(Step("workstation", "fail", "refused", "renew the certificate"))
    with contextlib.suppress(Stop):
        walk.fail("never", "not reached by a real walk")
    report = walk.report
    assert report.broken is not None and report.broken.name == "workstation"
    assert report.to_json()["broken"] == "workstation" and not report.to_json()["ok"]
    assert "what to do: renew the certificate" in report.text() and "Broken link: workstation." in report.text()


def test_a_walk_without_a_failure_says_every_link_works() -> None:
    walk = Walk()
    walk.add(Step("ssh", "ok", "/usr/bin/ssh"))
    walk.warn("ecflow_ui", "not installed", "apt install ecflow-client")
    assert walk.report.broken is None and walk.report.text().endswith("Every link works.")
