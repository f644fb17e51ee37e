"""Node commands (suspend, resume, requeue, execute, complete, abort, kill) as ecflow_client 5.9.2 sends them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, get_args

from ecflow_remote.errors import ActionRefused, NodeActionError, UnknownPath

from .commands import Identity, request, user_base

NodeAction = Literal["suspend", "resume", "requeue", "execute", "complete", "abort", "kill"]
NODE_ACTIONS: tuple[NodeAction, ...] = get_args(NodeAction)
# The ones that throw work away or start a job: a person confirms them (ecflow_ui asks for requeue and kill too).
DESTRUCTIVE_ACTIONS: frozenset[NodeAction] = frozenset({"requeue", "execute", "complete", "abort", "kill"})

# PathsCmd::Api and RequeueNodeCmd::Option of ecFlow 5.x.
_PATHS_SUSPEND = 1
_PATHS_RESUME = 2
_PATHS_KILL = 3
_REQUEUE_FORCE = 2


def action_request(identity: Identity, action: NodeAction, paths: Sequence[str]) -> dict[str, Any]:
    """The request ecflow_ui's menu runs for `action` (share/ecflow/etc/ecflowview_menus.json of 5.9.2):
    `--suspend`, `--resume`, `--kill` (PathsCmd), `--requeue=force` (RequeueNodeCmd), `--run` (RunNodeCmd) and
    `--force=complete|aborted` (ForceCmd), with every path in one request as ecflow_client sends them."""
    user = {"cereal_class_version": 0, "value0": user_base(identity)}
    path_list = list(paths)
    if action in ("suspend", "resume", "kill"):
        api = {"suspend": _PATHS_SUSPEND, "resume": _PATHS_RESUME, "kill": _PATHS_KILL}[action]
        return request("PathsCmd", {**user, "api_": api, "paths_": path_list, "force_": False})
    if action == "requeue":
        # ecflow_ui's Requeue is `--requeue=force`: plain --requeue silently does nothing when a task below runs.
        return request("RequeueNodeCmd", {**user, "paths_": path_list, "option_": _REQUEUE_FORCE})
    if action == "execute":
        return request("RunNodeCmd", {**user, "paths_": path_list, "force_": False})
    if action in ("complete", "abort"):
        state = "complete" if action == "complete" else "aborted"
        return request(
            "ForceCmd",
            {**user, "paths_": path_list, "stateOrEvent_": state, "recursive_": False, "setRepeatToLastValue_": False},
        )
    raise ValueError(f"unknown node action {action!r}; choose one of {', '.join(NODE_ACTIONS)}")


def check_action(action: str) -> NodeAction:
    """`action` as a NodeAction, or a ValueError listing the seven."""
    if action not in NODE_ACTIONS:
        raise ValueError(f"unknown node action {action!r}; choose one of {', '.join(NODE_ACTIONS)}")
    return action


def check_paths(paths: str | Sequence[str]) -> list[str]:
    """The paths as a list; each must be absolute, and there must be at least one."""
    path_list = [paths] if isinstance(paths, str) else list(paths)
    if not path_list:
        raise ValueError("a node action needs at least one node path")
    for path in path_list:
        if not path.startswith("/") or path == "/":
            raise ValueError(f"node paths are absolute, like /suite/family/task, not {path!r}")
    return path_list


# "PathsCmd:Suspend: Could not find node at path '/s/x'", "RequeueNodeCmd: Could not find node at path /s/x", …
_NOT_FOUND = re.compile(r"Could not find node at path '?(/[^'\s]*)'?")
_REFUSED_WORDS = ("authentication failed", "is not allowed", "password", "not authorised", "write access")


def classify_server_error(server: str, action: NodeAction, paths: Sequence[str], server_text: str) -> NodeActionError:
    """The ErrorCmd text of a node action as one of the error classes above, in a single line."""
    missing = _NOT_FOUND.findall(server_text)
    if missing:
        return UnknownPath(server, action, missing, "no such node", server_text)
    one_line = " ".join(server_text.split())
    lowered = one_line.lower()
    if any(word in lowered for word in _REFUSED_WORDS):
        return ActionRefused(server, action, paths, f"refused by the server: {one_line}", server_text)
    return NodeActionError(server, action, paths, f"the server said: {one_line}", server_text)
