"""Why a node is not running, from the definition alone, as ecflow_ui's Why tab (ecFlow's Node::why) tells it."""

from __future__ import annotations

from ecflow_remote.errors import ExpressionError, UnknownNode

from .attributes import InLimit, Limit
from .defs import Defs, Node
from .expr import explain, resolve

# How far down a family's queued children are followed (ecflow_ui follows them all; a person reads a few).
MAX_CHILD_REASONS = 20


def why(defs: Defs, path: str) -> list[str]:
    """One sentence per reason `path` is not running now, server first, then ancestors, the node, its children.

    Raises UnknownNode for a path the definition does not have."""
    node = defs.find(path)
    reasons: list[str] = []
    if defs.server_state != "RUNNING":
        reasons.append(f"The server is {defs.server_state.lower()}: it starts no job until it is restarted")
    for ancestor in reversed(list(node.ancestors())):
        reasons.extend(_holding(ancestor, as_parent=True))
    if node.state in ("active", "submitted"):
        reasons.append(f"{node.path} is {node.state}: it is running already")
        return reasons
    if node.state == "complete" and not node.suspended:
        reasons.append(f"{node.path} is complete: requeue it to run it again")
        return reasons
    if node.state == "aborted" and node.is_submittable:
        reasons.append(f"{node.path} is aborted: it runs again only when requeued or executed")
        return reasons
    reasons.extend(_holding(node, as_parent=False))
    if not node.is_submittable:
        reasons.extend(_children(node))
    return reasons


def _holding(node: Node, as_parent: bool) -> list[str]:
    """What holds `node` itself: suspension, its trigger, time dependencies, limits (and, for a parent, its state)."""
    out: list[str] = []
    who = f"Parent {node.path}" if as_parent else node.path
    if node.suspended:
        out.append(f"{who} is suspended")
    if as_parent and node.state == "complete":
        out.append(f"{who} is complete: nothing below it runs until it is requeued")
    attrs = node.attrs
    if attrs.trigger and not attrs.trigger_free:
        out.extend(_expression(node, who, "trigger", attrs.trigger))
    for text, note in attrs.times:
        if "free" not in note.split():
            out.append(f"{who} is holding on {text}")
    for inlimit in attrs.inlimits:
        full = _full_limit(node, inlimit)
        if full:
            out.append(f"{who} is holding on {full}")
    return out


def _expression(node: Node, who: str, kind: str, text: str) -> list[str]:
    try:
        holds, failing = explain(text, node)
    except ExpressionError as e:
        return [f"{who} has a {kind} this tool cannot read ({e}): {text}"]
    if holds:
        return []
    detail = f" ({'; '.join(failing)})" if failing else ""
    return [f"{who} is holding on {kind}: {text}{detail}"]


def _find_limit(node: Node, inlimit: InLimit) -> tuple[Node, Limit] | None:
    """The limit an inlimit names: on the node at its path, else on the nearest node up the tree that has it."""
    if inlimit.path:
        try:
            owner = resolve(node, inlimit.path)
        except UnknownNode:
            return None
        limit = owner.attrs.limits.get(inlimit.name)
        return (owner, limit) if limit else None
    for candidate in (node, *node.ancestors()):
        limit = candidate.attrs.limits.get(inlimit.name)
        if limit:
            return candidate, limit
    return None


def _full_limit(node: Node, inlimit: InLimit) -> str:
    found = _find_limit(node, inlimit)
    if found is None:
        return ""
    owner, limit = found
    if limit.value + inlimit.tokens <= limit.limit:
        return ""
    users = f": {', '.join(limit.paths)}" if limit.paths else ""
    return f"limit {owner.path}:{limit.name} ({limit.value} of {limit.limit} tokens in use{users})"


def _children(node: Node) -> list[str]:
    """Bottom-up part for a suite or family: why its queued children do not run."""
    out: list[str] = []
    for child in node.children:
        if child.state != "queued" and not child.suspended:
            continue
        for reason in _holding(child, as_parent=False):
            out.append(reason)
        if len(out) >= MAX_CHILD_REASONS:
            out.append("… (more children are held; ask about them one by one)")
            break
        if not child.is_submittable and child.state == "queued" and not child.suspended:
            out.extend(_children(child)[: MAX_CHILD_REASONS - len(out)])
    return out
