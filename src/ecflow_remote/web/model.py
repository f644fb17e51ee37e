"""What the page is sent: a server's tree in a compact flat form, state changes, and one node's details."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecflow_remote.web import adapter

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import Defs, Node

KIND_CODES = {"suite": "s", "family": "f", "task": "t", "alias": "a"}
# The job password of the current submission: a secret, never sent to the page.
HIDDEN_VARIABLES = frozenset({"ECF_PASS"})


def tree_json(server: str, defs: Defs) -> dict[str, Any]:
    """Every node as [parent index, name, kind code, state, suspended, late], depth first: a 10 000-task suite is a few
    hundred kB that the page turns into its tree in milliseconds (no nested objects to walk)."""
    nodes: list[list[Any]] = []

    def add(node: Node, parent: int) -> None:
        index = len(nodes)
        nodes.append(
            [parent, node.name, KIND_CODES.get(node.kind, "t"), node.state, int(node.suspended), int(node.late)]
        )
        for child in node.children:
            add(child, index)

    for suite in defs.suites:
        add(suite, -1)
    return {
        "server": server,
        "server_state": defs.server_state,
        "state": defs.state,
        "nodes": nodes,
    }


def path_index(defs: Defs) -> dict[str, Node]:
    """Nodes by path: Node.find walks sibling lists, too slow for many changes in a 10 000-task family."""
    return {node.path: node for node in defs}


def states_json(server: str, defs: Defs, index: dict[str, Node], paths: set[str]) -> dict[str, Any]:
    """The new state of each changed node (paths no longer in the tree are left out)."""
    changed = [[p, index[p].state, int(index[p].suspended), int(index[p].late)] for p in sorted(paths) if p in index]
    return {"server": server, "server_state": defs.server_state, "state": defs.state, "nodes": changed}


def variables_json(node: Node) -> list[dict[str, Any]]:
    """Every variable the node's job sees: the winning value and where it comes from (the node itself, an
    ancestor's path, or the server), and the definitions it hides, as ecflow_ui's variables tab."""
    levels: list[tuple[str, dict[str, str], str]] = []  # (origin, variables, kind of origin)
    root = node._root_defs()
    if root is not None:
        levels.append(("server", root.server_variables, "server"))
        levels.append(("server", root.user_variables, "server"))
    for level in (*reversed(list(node.ancestors())), node):
        levels.append((level.path, level.generated_variables(), "generated"))
        levels.append((level.path, level.variables, "user"))
    seen: dict[str, dict[str, Any]] = {}
    for origin, variables, kind in levels:
        for name, value in variables.items():
            shown = "" if name in HIDDEN_VARIABLES else value
            previous = seen.get(name)
            entry = {
                "name": name,
                "value": shown,
                "origin": origin,
                "kind": kind,
                "own": origin == node.path,
                "hidden": name in HIDDEN_VARIABLES,
                "overrides": [],
            }
            if previous is not None:
                hidden = {"origin": previous["origin"], "value": previous["value"]}
                entry["overrides"] = [*previous["overrides"], hidden]
            seen[name] = entry
    return sorted(seen.values(), key=lambda e: (not e["own"], e["name"]))


def server_json(server: str, defs: Defs) -> dict[str, Any]:
    """The server node's variables: the user's own (editable with alter on `/`) and the server's generated ones."""
    variables = [
        {"name": n, "value": v, "origin": "server", "kind": "user", "own": True, "hidden": False, "overrides": []}
        for n, v in sorted(defs.user_variables.items())
    ]
    variables += [
        {"name": n, "value": v, "origin": "server", "kind": "generated", "own": False, "hidden": False, "overrides": []}
        for n, v in sorted(defs.server_variables.items())
        if n not in defs.user_variables
    ]
    return {"server": server, "path": "/", "kind": "server", "state": defs.server_state, "variables": variables}


def node_json(server: str, defs: Defs, node: Node) -> dict[str, Any]:
    """What the details pane shows for one node."""
    data: dict[str, Any] = {
        "server": server,
        "path": node.path,
        "name": node.name,
        "kind": node.kind,
        "state": node.state,
        "suspended": node.suspended,
        "try_no": node.try_no,
        "abort_reason": node.abort_reason,
        "variables": variables_json(node),
        "attributes": adapter.attributes(node),
        "jobout": None,
        "logserver": None,
    }
    if node.is_submittable:
        try:
            data["jobout"] = node.jobout_path()
            logserver = node.logserver()
            data["logserver"] = f"{logserver[0]}:{logserver[1]}" if logserver else None
        except Exception as e:  # a bad ECF_LOGPORT: shown, not fatal to the pane
            data["jobout_error"] = str(e)
    try:
        data["why"] = adapter.why(defs, node.path)
    except Exception as e:  # the explanation is a help, never a reason to lose the pane
        data["why"], data["why_error"] = None, str(e)
    return data
