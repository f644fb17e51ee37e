"""`ecflow-remote suites`: a server's node tree with states, as a rich tree, plain text or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text
    from rich.tree import Tree

    from ecflow_remote.clients.ecflow import AsyncEcflowClient, Defs, Node
    from ecflow_remote.tunnel.supervisor import Tunnel

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


def ecflow_client_for(
    tunnel: Tunnel, server: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0
) -> AsyncEcflowClient:
    """A native client for a profile server through the running tunnel, as the profile's ecFlow user."""
    from ecflow_remote.access import identity
    from ecflow_remote.access.passwords import read_passwords_warning
    from ecflow_remote.clients.ecflow import AsyncEcflowClient

    spec = tunnel.profile.server(server)  # a clear error for an unknown name
    plan = tunnel.plan()
    route = plan.route(plan.endpoint(server))
    passwords = read_passwords_warning(tunnel.profile, [spec.name]) if spec.custom_user else {}
    return AsyncEcflowClient(
        route.host,
        route.port,
        **route.proxy_kwargs(),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        **identity.auth_for(spec, passwords).client_kwargs(),
    )


async def fetch(tunnel: Tunnel, server: str, path: str | None = None) -> Defs | Node:
    """The whole definition, or the subtree at `path` (with its inherited variables: taken from the whole tree)."""
    client = ecflow_client_for(tunnel, server)
    defs = await client.get_defs()
    if not path or path == "/":
        return defs
    return defs.find(path)


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


def _rich_label(node: Node) -> Text:
    from rich.text import Text

    text = Text(f"{node.name} ", style="bold" if node.kind != "task" else "")
    colour = STATE_COLOURS["suspended"] if node.suspended else STATE_COLOURS.get(node.state, STATE_COLOURS["unknown"])
    text.append(f" {node.state} ", style=f"black on {colour}")
    if node.suspended:
        text.append(" suspended", style=STATE_COLOURS["suspended"])
    if node.kind != "task":
        text.append(f"  {node.kind}", style="dim")
    return text


def rich_tree(server: str, tree: Defs | Node) -> Tree:
    from rich.text import Text
    from rich.tree import Tree

    from ecflow_remote.clients.ecflow import Defs

    if isinstance(tree, Defs):
        header = Text(f"{server} ", style="bold")
        header.append(tree.server_state, style=SERVER_STATE_COLOURS.get(tree.server_state, ""))
        top = Tree(header)
        roots = tree.suites
    else:
        top = Tree(Text(server, style="bold"))
        roots = [tree]

    def add(parent: Tree, node: Node) -> None:
        branch = parent.add(_rich_label(node))
        for child in node.children:
            if child.kind != "alias":
                add(branch, child)

    for root in roots:
        add(top, root)
    return top
