"""The one place the web app meets the ecFlow client's node commands, `why`, attributes and incremental sync.

Live changes come from the client's watch (incremental sync); PollingWatch (whole definition, diffed) is kept as
the baseline bench/web.py compares it with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ecflow_remote.clients.ecflow import DESTRUCTIVE_ACTIONS, NODE_ACTIONS, actions
from ecflow_remote.clients.ecflow import why as ecflow_why

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, Defs, Node


def node_actions() -> tuple[str, ...]:
    """The node commands of ecflow_client, in the order the page offers them."""
    return tuple(NODE_ACTIONS)


def destructive_actions() -> frozenset[str]:
    return frozenset(DESTRUCTIVE_ACTIONS)


async def node_action(client: AsyncEcflowClient, action: str, paths: Sequence[str]) -> None:
    """One request applying `action` to every path, as `ecflow_client --ACTION p1 p2`."""
    await client.node_action(actions.check_action(action), list(paths))


def why(defs: Defs, path: str) -> list[str]:
    """Why the node is not running, as ecflow_ui's Why tab."""
    return list(ecflow_why(defs, path))


def _refs(expr: Any) -> list[Any]:
    from ecflow_remote.clients.ecflow.expr import BinOp, Not, Ref

    if isinstance(expr, Ref):
        return [expr]
    if isinstance(expr, Not):
        return _refs(expr.operand)
    if isinstance(expr, BinOp):
        return _refs(expr.left) + _refs(expr.right)
    return []


def _referenced(node: Node) -> list[tuple[str, Node | None, str]]:
    """(kind, node or None when unresolved, the reference's text) of each node named in the trigger/complete."""
    from ecflow_remote.clients.ecflow import expr

    found: list[tuple[str, Node | None, str]] = []
    for kind, text in (("trigger", node.attrs.trigger), ("complete", node.attrs.complete)):
        if not text:
            continue
        try:
            refs = _refs(expr.parse(text))
        except Exception:  # an expression this parser cannot read: shown as text, never a broken panel
            continue
        for ref in refs:
            shown = ref.path + (f":{ref.attr}" if ref.attr else "")
            try:
                found.append((kind, expr.resolve(node, ref.path), shown))
            except Exception:
                found.append((kind, None, shown))
    return found


def triggers(defs: Defs, node: Node) -> dict[str, Any]:
    """ecflow_ui's Triggers panel: the nodes this one waits for, and the nodes outside it whose trigger or complete
    names it (or a node below it)."""
    needs = [
        {"kind": kind, "ref": shown, "path": n.path if n else None, "state": n.state if n else None}
        for kind, n, shown in _referenced(node)
    ]
    needed_by = []
    prefix = node.path.rstrip("/") + "/"
    for other in defs:
        if other is node or other.path.startswith(prefix) or not (other.attrs.trigger or other.attrs.complete):
            continue
        for kind, n, shown in _referenced(other):
            if n is not None and (n is node or n.path.startswith(prefix)):
                needed_by.append({"kind": kind, "ref": shown, "path": other.path, "state": other.state})
                break
    return {"trigger": node.attrs.trigger, "complete": node.attrs.complete, "needs": needs, "needed_by": needed_by}


def attributes(node: Node) -> dict[str, Any]:
    """Labels, meters, events, trigger and the like as plain JSON values."""
    attrs = node.attrs
    return {
        "labels": dict(attrs.labels),
        "meters": {
            m.name: {"value": m.value, "min": m.minimum, "max": m.maximum, "threshold": m.threshold}
            for m in attrs.meters.values()
        },
        "events": dict(attrs.events),
        "trigger": attrs.trigger,
        "complete": attrs.complete,
        # (the dependency, the server's note on it such as "isValid:false")
        "times": [f"{text}  ({note})" if note else text for text, note in attrs.times],
        "repeat": attrs.repeat,
        "defstatus": attrs.defstatus,
        "late": attrs.late,
        "limits": [
            {"name": lim.name, "limit": lim.limit, "value": lim.value, "paths": list(lim.paths)}
            for lim in attrs.limits.values()
        ],
        "inlimits": [{"name": il.name, "path": il.path, "tokens": il.tokens} for il in attrs.inlimits],
    }


# ------------------------------------------------------------------------------------------------ live sync


@dataclass
class Update:
    """What changed since the last poll: a whole new tree, or the paths whose state (or other details) changed."""

    full: bool = False
    states: set[str] = field(default_factory=set)  # state, suspended or late changed
    touched: set[str] = field(default_factory=set)  # attributes or variables changed (details to re-read)
    server_state: bool = False

    def __bool__(self) -> bool:
        return self.full or bool(self.states) or bool(self.touched) or self.server_state


class DefsWatcher(Protocol):
    """A server's live definition: `defs` is current after each poll()."""

    @property
    def defs(self) -> Defs: ...

    # Seconds between polls: news is a few hundred bytes, a whole definition can be half a megabyte.
    interval: float

    async def poll(self) -> Update: ...

    async def close(self) -> None: ...


async def open_watch(client: AsyncEcflowClient, suites: Sequence[str] | None = None) -> DefsWatcher:
    """The client's incremental sync (of `suites` only, through a client handle, when given); `defs` is read at
    once."""
    watcher = _NativeWatch(client, suites)
    await watcher.poll()
    return watcher


class PollingWatch:
    """Fallback: fetch the whole definition each poll and diff it against the previous one."""

    interval = 1.0

    def __init__(self, fetch: Callable[[], Any]) -> None:
        self._fetch = fetch
        self._defs: Defs | None = None

    @property
    def defs(self) -> Defs:
        assert self._defs is not None, "poll() first"
        return self._defs

    async def poll(self) -> Update:
        new = await self._fetch()
        old, self._defs = self._defs, new
        return Update(full=True) if old is None else diff(old, new)

    async def close(self) -> None:
        return None


def _signature(node: Node) -> tuple[Any, ...]:
    """What a node's details show besides its state: a change in it tells an open details pane to re-read."""
    return (node.try_no, node.abort_reason, tuple(node.variables.items()), repr(getattr(node, "attrs", None)))


def diff(old: Defs, new: Defs) -> Update:
    """The changes from one whole definition to the next; a different set of nodes counts as a new tree."""
    update = Update(server_state=(old.server_state, old.state) != (new.server_state, new.state))
    old_nodes, new_nodes = list(old), list(new)
    if len(old_nodes) != len(new_nodes):
        return Update(full=True)
    for a, b in zip(old_nodes, new_nodes, strict=True):
        if a.name != b.name or a.kind != b.kind or len(a.children) != len(b.children):
            return Update(full=True)
        if a.state != b.state or a.suspended != b.suspended or a.late != b.late:
            update.states.add(b.path)
        if _signature(a) != _signature(b):
            update.touched.add(b.path)
    if old.variables != new.variables:
        update.touched.add("/")
    return update


class _NativeWatch:
    """The client's incremental sync (news, then sync only when news says so)."""

    interval = 0.5
    _STATE_KINDS = frozenset({"state", "suspended", "late"})
    _TREE_KINDS = frozenset({"added", "removed"})

    def __init__(self, client: AsyncEcflowClient, suites: Sequence[str] | None = None) -> None:
        self._cm = client.watch(suites=suites)
        self._watch: Any = None

    @property
    def defs(self) -> Defs:
        return self._watch.defs  # type: ignore[no-any-return]

    async def poll(self) -> Update:
        if self._watch is None:
            self._watch = await self._cm.__aenter__()
            return Update(full=True)
        got = await self._watch.poll()
        # A whole definition re-sent by the server still comes with the computed changes: only nodes added or
        # removed make a new tree for the page (Feed re-indexes the new Defs object either way).
        update = Update()
        for change in got.changes:
            if change.what in self._TREE_KINDS:
                return Update(full=True)
            if change.path == "/" or change.what == "server_state":
                update.server_state = True
                if change.what != "server_state":
                    update.touched.add("/")  # the server's variables: an open server pane re-reads them
            elif change.what in self._STATE_KINDS:
                update.states.add(change.path)
            else:
                update.touched.add(change.path)
        return update

    async def close(self) -> None:
        if self._watch is not None:
            self._watch = None
            await asyncio.shield(self._cm.__aexit__(None, None, None))
