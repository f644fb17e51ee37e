"""The profile's [ui] table: what `ecflow-remote ui` gives ecflow_ui beyond the servers (system server lists)."""

from __future__ import annotations

from typing import Final

from ecflow_remote.profile.model import UiSettings
from ecflow_remote.profile.values import TableChecker

UI_KEYS: Final = ("system_servers", "ecflow_ui")
_MAX_PATH: Final = 4096


def path_problem(value: object) -> str | None:
    """Why `value` cannot be a server-list path on the workstation, or None."""
    if not isinstance(value, str):
        return "each entry must be a string: the absolute path of a server-list file on your workstation."
    if not value.startswith("/"):
        return f"{value!r} is not an absolute path: give the file's full path on your workstation."
    if len(value) > _MAX_PATH:
        return "the path is too long."
    if ":" in value:
        # ECFLOW_SYSTEM_SERVERS_LIST is a colon list: a colon would split the path in two.
        return f"{value!r} contains ':', which ecflow_ui's list of files cannot hold."
    if not value.isprintable():
        return f"{value!r} contains control characters or line breaks."
    return None


def check_ui(checker: TableChecker, data: dict[str, object]) -> UiSettings:
    """The [ui] table, checked; UiSettings() when there is none."""
    table = checker.get_table(data, "ui")
    if table is None:
        return UiSettings()
    checker.check_keys(table, UI_KEYS, "ui", None)
    ecflow_ui = _ecflow_ui(checker, table.get("ecflow_ui"))
    if "system_servers" not in table:
        return UiSettings(ecflow_ui=ecflow_ui)
    value = table["system_servers"]
    if isinstance(value, str):
        checker.fail(f'expected an array of paths: system_servers = ["{value}"].', "ui", None, "system_servers")
    if not isinstance(value, list):
        checker.fail(
            'expected an array of paths on your workstation, like ["/usr/local/share/ecflow/servers"].',
            "ui",
            None,
            "system_servers",
        )
    paths: list[str] = []
    for item in value:
        problem = path_problem(item)
        if problem:
            checker.fail(problem, "ui", None, "system_servers")
        assert isinstance(item, str)
        if item not in paths:
            paths.append(item)
    return UiSettings(system_servers=tuple(paths), ecflow_ui=ecflow_ui)


def _ecflow_ui(checker: TableChecker, value: object) -> str | None:
    """[ui] ecflow_ui: the ecflow_ui to run (a path on this machine, ~ allowed), or None for the first on PATH."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        checker.fail(
            'expected the path of an ecflow_ui, like "/opt/miniconda3/bin/ecflow_ui".', "ui", None, "ecflow_ui"
        )
    return value
