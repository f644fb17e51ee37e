"""The one place the web app meets the ecFlow client's node commands, `why` and incremental sync.

Those arrive with the node-commands work (AsyncEcflowClient.node_action / .watch, ecflow.why, the attribute fields
on Node). Until the client has them this module falls back: live changes by polling the whole definition and
diffing it (same result, more bytes), actions and `why` reported as not available yet, attributes left empty. Once
they exist (`hasattr` checks at call time) the real calls are used with no change elsewhere.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ecflow_remote.errors import EcflowRemoteError

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, Defs, Node

# The node commands of ecflow_client, in the order the page offers them (ecflowcmds' NODE_ACTIONS when present).
FALLBACK_ACTIONS = ("suspend", "resume", "requeue", "execute", "complete", "abort", "kill")
FALLBACK_DESTRUCTIVE = frozenset({"requeue", "execute", "complete", "abort", "kill"})


class NotAvailable(EcflowRemoteError):
    """This ecflow-remote's client cannot do that yet."""


def _ecflow() -> Any:
    return importlib.import_module("ecflow_remote.clients.ecflow")


def node_actions() -> tuple[str, ...]:
    return tuple(getattr(_ecflow(), "NODE_ACTIONS", FALLBACK_ACTIONS))


def destructive_actions() -> frozenset[str]:
    return frozenset(getattr(_ecflow(), "DESTRUCTIVE_ACTIONS", FALLBACK_DESTRUCTIVE))


def actions_available() -> bool:
    return hasattr(_ecflow().AsyncEcflowClient, "node_action")


async def node_action(client: AsyncEcflowClient, action: str, paths: Sequence[str]) -> None:
    """One request applying `action` to every path, as `ecflow_client --ACTION p1 p2`."""
    if action not in node_actions():
        raise ValueError(f"unknown node action {action!r}; one of {', '.join(node_actions())}")
    act = getattr(client, "node_action", None)
    if act is None:
        raise NotAvailable(f"{action}: node actions are not available in this version of ecflow-remote yet")
    await act(action, list(paths))


def why(defs: Defs, path: str) -> list[str] | None:
    """Why the node is not running, as ecflow_ui's Why tab; None when this version cannot tell yet."""
    try:
        module = importlib.import_module("ecflow_remote.clients.ecflow.why")
    except ImportError:
        return None
    return list(module.why(defs, path))


def attributes(node: Node) -> dict[str, Any]:
    """Labels, meters, events, trigger and the like as plain JSON values (empty where the parser has none: the
    attribute parser arrives with the node commands, as `node.attrs`)."""
    attrs = getattr(node, "attrs", None)
    if attrs is None:
        return {
            "labels": {},
            "meters": {},
            "events": {},
            "trigger": None,
            "complete": None,
            "times": [],
            "repeat": None,
            "defstatus": None,
            "late": None,
            "limits": [],
            "inlimits": [],
        }
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
    states: set[str] = field(default_factory=set)  # state or suspended changed
    touched: set[str] = field(default_factory=set)  # attributes or variables changed (details to re-read)
    server_state: bool = False

    def __bool__(self) -> bool:
        return self.full or bool(self.states) or bool(self.touched) or self.server_state


class Watcher(Protocol):
    """A server's live definition: `defs` is current after each poll()."""

    @property
    def defs(self) -> Defs: ...

    # Seconds between polls: news is a few hundred bytes, a whole definition can be half a megabyte.
    interval: float

    async def poll(self) -> Update: ...

    async def close(self) -> None: ...


async def open_watch(client: AsyncEcflowClient) -> Watcher:
    """The client's incremental sync when it has one, else whole-definition polling; `defs` is read at once."""
    if hasattr(client, "watch"):
        watcher: Watcher = _NativeWatch(client)
    else:
        watcher = PollingWatch(client.get_defs)
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
        if a.state != b.state or a.suspended != b.suspended:
            update.states.add(b.path)
        if _signature(a) != _signature(b):
            update.touched.add(b.path)
    if old.variables != new.variables:
        update.touched.add("/")
    return update


class _NativeWatch:
    """The client's incremental sync (news, then sync only when news says so)."""

    interval = 0.5
    _STATE_KINDS = frozenset({"state", "suspended"})
    _TREE_KINDS = frozenset({"added", "removed"})

    def __init__(self, client: AsyncEcflowClient) -> None:
        self._cm = client.watch()
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
            elif change.what in self._STATE_KINDS:
                update.states.add(change.path)
            else:
                update.touched.add(change.path)
        return update

    async def close(self) -> None:
        if self._watch is not None:
            self._watch = None
            await asyncio.shield(self._cm.__aexit__(None, None, None))
