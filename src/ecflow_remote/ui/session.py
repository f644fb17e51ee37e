"""ecflow_ui's start-up session (default.session/session.json): which servers it opens without a click."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ecflow_remote.errors import UiError
from ecflow_remote.safefile import write_atomic

SESSION_DIR: Final = "default.session"
SESSION_FILE: Final = "session.json"
SESSION_TEMPLATE: Final = Path("/usr/share/ecflow/etc/ecflow_ui_test_session_template.json")


def _default_session() -> dict[str, Any]:
    try:
        data = json.loads(SESSION_TEMPLATE.read_text())
        if isinstance(data, dict):
            return data
    except (OSError, ValueError):
        pass
    # The template's shape, for installs without it: one window, one tab, a tree and an info panel.
    tree = {"type": "tree", "dockId": "dock_0", "breadcrumbs": {"active": "1"}, "state": ""}
    info = {"type": "info", "dockId": "dock_1", "breadcrumbs": {"active": "1"}, "frozen": "false", "detached": "false"}
    tab = {"server": [], "widgetCount": "2", "widget_0": tree, "widget_1": info}
    window = {"infoPanelCount": "2", "tabCount": "1", "currentTabId": "0", "tab_0": tab}
    return {"windowCount": "1", "topWindowId": "0", "window_0": window}


def _session_servers(session: dict[str, Any]) -> list[Any] | None:
    """The top window's current tab's server list (the one ecflow_ui shows first), or None if not understood."""
    window = session.get(f"window_{session.get('topWindowId', '0')}")
    if not isinstance(window, dict):
        return None
    tab = window.get(f"tab_{window.get('currentTabId', '0')}")
    if not isinstance(tab, dict):
        return None
    servers = tab.setdefault("server", [])
    if isinstance(servers, str):
        # ecflow_ui saves a tab without servers as "" (boost's JSON writer has no empty array).
        servers = tab["server"] = [servers] if servers else []
    return servers if isinstance(servers, list) else None


def write_session(config_dir: Path, names: Sequence[str]) -> str:
    """Make ecflow_ui open `names` at start-up: a new session, or the existing one with them added.

    The user's session is kept (their windows, tabs and layout) and only gains the profile's servers in the tab
    it opens on; a session we cannot read is left alone rather than replaced.
    """
    path = config_dir / SESSION_DIR / SESSION_FILE
    if path.exists():
        try:
            session = json.loads(path.read_text())
        except (OSError, ValueError):
            return "kept"
        servers = _session_servers(session) if isinstance(session, dict) else None
        if servers is None:
            return "kept"
        servers.extend(n for n in names if n not in servers)
        how = "extended"
    else:
        session = _default_session()
        servers = _session_servers(session)
        assert servers is not None, "the built-in session has a tab"
        servers[:] = list(names)
        how = "created"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(session, indent=4) + "\n")
    except OSError as e:
        raise UiError(f"cannot write ecflow_ui's session {path}: {e.strerror}") from None
    return how
