"""What `ecflow-remote ui` says about the Centre's system server lists."""

from __future__ import annotations

from ecflow_remote.cli.launch import system_report
from ecflow_remote.ui.systemlists import SystemLists
from ecflow_remote.uiservers import UiServer


def test_system_report() -> None:
    assert system_report(SystemLists("none")) == []
    failed = SystemLists("profile", ("/a",), error="cannot read the system server lists: the link died")
    assert system_report(failed) == [
        "warning: cannot read the system server lists: the link died; ecflow_ui starts without them"
    ]
    lists = SystemLists(
        "workstation",
        ("/a", "/b"),
        (UiServer("s1", "h", 1, system=True), UiServer("s2", "h", 2, system=True)),
        unreachable=("s2",),
        missing=("/c",),
    )
    assert system_report(lists) == [
        "system server lists (your workstation's ECFLOW_SYSTEM_SERVERS_LIST): 2 servers from /a, /b",
        "  not readable on the workstation: /c",
        "  listed, but not carried by this tunnel (see `ecflow-remote status`): s2",
    ]
