"""`ecflow-remote suites`: a server's node tree with states, as data, JSON or plain text (the CLI colours it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import Defs, Node
    from ecflow_remote.tunnel.handle import Tunnel

# ecflow_ui 5.9.2's default node state colours (share/ecflow/etc/ecflowview_nstate_conf.json: fill_colour, with
# font_colour black for all of them); a suspended node is drawn in the suspended colour whatever its state.
STATE_COLOURS = {
    "unknown": "rgb(220,220,220)",
    "complete": "rgb(255,238,1)",
    "queued": "rgb(173,216,230)",
    "aborted": "rgb(255,59,53)",
    "submitted": "rgb(64,224,208)",
    "active": "rgb(74,255,61)",
    "suspended": "rgb(239,191,0)",
}
# ecflowview_sstate_conf.json: the server's own state, shown next to its name.
SERVER_STATE_COLOURS = {"RUNNING": "rgb(0,200,0)", "HALTED": "rgb(255,0,0)", "SHUTDOWN": "rgb(255,166,0)"}


async def fetch(tunnel: Tunnel, server: str, path: str | None = None) -> Defs | Node:
    """The whole definition, or the subtree at `path` (with its inherited variables: taken from the whole tree)."""
    defs = await tunnel.ecflow_client(server).get_defs()
    if not path or path == "/":
        return defs
    return defs.find(path)


def within(path: str | None, changed: str) -> bool:
    """Whether a change on `changed` concerns the subtree at `path` (server-wide changes, on "/", always do)."""
    if not path or path.rstrip("/") == "" or changed == "/":
        return True
    root = path.rstrip("/")
    return changed == root or changed.startswith(root + "/")


# --------------------------------------------------------------------------------------------- JSON


def node_json(node: Node) -> dict[str, Any]:
    return {
        "path": node.path,
        "name": node.name,
        "kind": node.kind,
        "state": node.state,
        "suspended": node.suspended,
        "children": [node_json(c) for c in node.children],
    }


def to_json(server: str, tree: Defs | Node) -> dict[str, Any]:
    from ecflow_remote.clients.ecflow import Defs

    if isinstance(tree, Defs):
        return {
            "server": server,
            "server_state": tree.server_state,
            "state": tree.state,
            "suites": [node_json(s) for s in tree.suites],
        }
    return {"server": server, "node": node_json(tree)}


# --------------------------------------------------------------------------------------------- text


def _label(node: Node) -> str:
    flag = " suspended" if node.suspended else ""
    return f"{node.kind} {node.name}  {node.state}{flag}"


def plain_lines(server: str, tree: Defs | Node) -> list[str]:
    """Two spaces of indent a level: easy to grep and diff when piped."""
    from ecflow_remote.clients.ecflow import Defs

    lines: list[str] = []
    roots = tree.suites if isinstance(tree, Defs) else [tree]
    if isinstance(tree, Defs):
        lines.append(f"{server}  {tree.server_state}")
    for root in roots:
        depth0 = root.path.count("/")
        for node in root.walk():
            if node.kind == "alias":
                continue
            lines.append("  " * (node.path.count("/") - depth0 + 1) + _label(node))
    return lines
