"""Incremental sync as ecflow_ui does it: CSyncCmd NEWS/SYNC with change numbers, mementos applied to the tree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ecflow_remote.errors import ProtocolError, UnknownNode

from .attributes import InLimit, Limit, Meter
from .commands import Identity, Reply, request, user_base
from .defs import STATES, Defs, Node, parse_defs

# CSyncCmd::Api and ServerReply::News_t of ecFlow 5.x.
NEWS, SYNC, SYNC_FULL = 0, 1, 2
NO_NEWS, HAS_NEWS, DO_FULL_SYNC = 0, 1, 2
# SState::State: the server state in ServerStateMemento.
SERVER_STATES = ("HALTED", "SHUTDOWN", "RUNNING")
# cereal marks a polymorphic type's first appearance in an archive with this bit, and names it only then.
_FIRST = 0x80000000

# Mementos about things this tree does not model, or that change every minute (suite clocks): nothing to report.
_QUIET = frozenset({"SuiteClockMemento", "SuiteCalendarMemento", "SuiteBeginDeltaMemento", "AliasNumberMemento"})
# Flags: only `late` (Flag::LATE, bit 7) is modelled; the others (every user command sets `message`) stay quiet.
_LATE_BIT = 1 << 7
# Mementos that change attributes this tree keeps only as text: reported, and the node's text re-read.
_REFETCH = frozenset(
    {
        "NodeTriggerMemento",
        "NodeCompleteMemento",
        "NodeTimeMemento",
        "NodeTodayMemento",
        "NodeDayMemento",
        "NodeDateMemento",
        "NodeCronMemento",
        "NodeRepeatMemento",
        "NodeRepeatIndexMemento",
        "NodeLateMemento",
        "NodeDefStatusDeltaMemento",
    }
)
# Mementos about attributes not modelled at all: reported as "attributes".
_OTHER_ATTRIBUTES = frozenset(
    {"NodeZombieMemento", "NodeVerifyMemento", "NodeQueueMemento", "NodeQueueIndexMemento", "NodeGenericMemento"}
)
# Structure changed (nodes added, removed, reordered): only a whole new definition tells what it is now.
_STRUCTURE = frozenset({"ChildrenMemento", "AliasChildrenMemento", "OrderMemento"})


def sync_request(
    identity: Identity, api: int, state_change_no: int = 0, modify_change_no: int = 0, client_handle: int = 0
) -> dict[str, Any]:
    """`CSyncCmd` as python3-ecflow's news_local()/sync_local() send it; client handle 0 is every suite, another
    one only its registered suites (the suite filter)."""
    return request(
        "CSyncCmd",
        {
            "cereal_class_version": 0,
            "value0": user_base(identity),
            "api_": api,
            "client_handle_": client_handle,
            "client_state_change_no_": state_change_no if api != SYNC_FULL else 0,
            "client_modify_change_no_": modify_change_no if api != SYNC_FULL else 0,
        },
    )


@dataclass(frozen=True)
class NodeChange:
    """One change the server reported: on `path` ("/" for the server), `what` changed (`name` says which event,
    meter, label, variable or limit), from `old` to `new` where known."""

    path: str
    what: str
    name: str = ""
    old: str | int | bool | None = None
    new: str | int | bool | None = None


@dataclass(frozen=True)
class WatchUpdate:
    """What one poll brought: the changes, whether it was a whole new definition, and what it cost."""

    changes: tuple[NodeChange, ...]
    full: bool
    reply_bytes: int
    state_change_no: int
    modify_change_no: int


def news_of(reply: Reply, where: str = "") -> int:
    """SNewsCmd `news_`: NO_NEWS, HAS_NEWS or DO_FULL_SYNC."""
    if reply.kind != "SNewsCmd":
        raise ProtocolError(f"ecFlow server {where} answered {reply.kind} to news, expected SNewsCmd")
    news = reply.data.get("news_", NO_NEWS)
    return int(news) if isinstance(news, int) else NO_NEWS


def _polymorphic(items: list[Any], names: dict[int, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(class name, data) of each cereal polymorphic pointer; later ones of a type carry only its number.

    cereal numbers the types once per archive, so `names` must be shared by every list of one reply: a second
    node's memento of a type already sent carries only the number."""
    for item in items:
        pid = int(item.get("polymorphic_id", 0))
        if pid & _FIRST:
            names[pid & ~_FIRST] = str(item.get("polymorphic_name", ""))
        name = names.get(pid & ~_FIRST, "")
        data = item.get("ptr_wrapper", {}).get("data", {})
        yield name, data if isinstance(data, dict) else {}


class NeedsFullSync(Exception):
    """The reply cannot be applied to the tree held here: ask for a whole definition.

    `applied`: the changes already made to the tree in place before the reply proved unusable; a diff against the
    whole definition no longer sees them, so whoever reports changes must keep them."""

    def __init__(self, message: str, applied: list[NodeChange] | None = None) -> None:
        super().__init__(message)
        self.applied: list[NodeChange] = applied or []


@dataclass
class SyncResult:
    """The tree after a sync reply, what changed, and which node paths need their attribute text re-read."""

    defs: Defs
    changes: list[NodeChange]
    full: bool
    refetch: list[str]


def apply_sync(defs: Defs | None, reply: Reply, where: str = "") -> SyncResult:
    """Apply an SSyncCmd to `defs` in place (incremental), or parse the whole definition it carries (full).

    Raises NeedsFullSync when the mementos name nodes this tree does not have or change its structure."""
    if reply.kind != "SSyncCmd":
        raise ProtocolError(f"ecFlow server {where} answered {reply.kind} to sync, expected SSyncCmd")
    data = reply.data
    text = data.get("server_defs_") or (data.get("value1") if data.get("full_defs_") else "")
    if text:
        new = parse_defs(str(text))
        return SyncResult(new, diff(defs, new) if defs is not None else [], True, [])
    if defs is None:
        raise NeedsFullSync("no tree yet")
    delta = data.get("incremental_changes_", {})
    changes: list[NodeChange] = []
    refetch: list[str] = []
    try:
        _apply_delta(defs, delta, changes, refetch)
    except NeedsFullSync as e:
        raise NeedsFullSync(str(e), changes) from None
    defs.state_change_no = int(delta.get("server_state_change_no_", defs.state_change_no))
    defs.modify_change_no = int(delta.get("server_modify_change_no_", defs.modify_change_no))
    return SyncResult(defs, changes, False, sorted(set(refetch)))


def _apply_delta(defs: Defs, delta: dict[str, Any], changes: list[NodeChange], refetch: list[str]) -> None:
    """Apply each node's mementos in place, appending to `changes` as it goes (so a failure leaves what was done)."""
    names: dict[int, str] = {}
    for compound in delta.get("compound_mementos_", []):
        body = compound.get("ptr_wrapper", {}).get("data", {})
        path = str(body.get("absNodePath_", ""))
        mementos = list(_polymorphic(body.get("vec_", []), names))
        if path in ("", "/"):
            changes.extend(_apply_server(defs, mementos))
            continue
        try:
            node = defs.find(path)
        except UnknownNode:
            raise NeedsFullSync(f"the server changed {path}, which this tree does not have") from None
        if body.get("clear_attributes_"):
            # Attributes were added or deleted: ecFlow clears them all and re-sends every one.
            node.variables.clear()
            node.attrs.clear()
            changes.append(NodeChange(path, "attributes"))
            refetch.append(path)
        for name, memento in mementos:
            changes.extend(_apply_node(node, name, memento, refetch))


def _apply_server(defs: Defs, mementos: list[tuple[str, dict[str, Any]]]) -> list[NodeChange]:
    changes: list[NodeChange] = []
    for name, m in mementos:
        if name == "ServerStateMemento":
            new = SERVER_STATES[int(m.get("state_", 0))]
            changes.append(NodeChange("/", "server_state", old=defs.server_state, new=new))
            defs.server_state = new
        elif name == "StateMemento":
            new = _state(m.get("state_", 0))
            changes.append(NodeChange("/", "state", old=defs.state, new=new))
            defs.state = new
        elif name == "ServerVariableMemento":
            # The server's user variables (Defs::set_memento: set_user_variables), not its generated ones.
            defs.user_variables = {v["n_"]: str(v.get("v_", "")) for v in m.get("serverEnv_", [])}
            changes.append(NodeChange("/", "variable"))
        elif name == "OrderMemento":
            raise NeedsFullSync("the suites were reordered")
        elif name not in _QUIET:
            changes.append(NodeChange("/", "attributes", name))
    return changes


def _state(value: Any) -> str:
    index = int(value) if isinstance(value, int) else 0
    return STATES[index] if 0 <= index < len(STATES) else "unknown"


def _apply_node(node: Node, name: str, m: dict[str, Any], refetch: list[str]) -> list[NodeChange]:
    path = node.path
    attrs = node.attrs
    if name == "NodeStateMemento":
        new = _state(m.get("state_", {}).get("first", 0))
        old, node.state = node.state, new
        return [NodeChange(path, "state", old=old, new=new)]
    if name == "SuspendedMemento":
        suspended = bool(m.get("suspended_", False))
        old_s, node.suspended = node.suspended, suspended
        return [NodeChange(path, "suspended", old=old_s, new=suspended)]
    if name == "NodeEventMemento":
        event = m.get("event_", {})
        # An event may be known by number only; ecFlow names it by its number then.
        key = str(event.get("n_") or event.get("number_", ""))
        value = bool(event.get("v_", False))
        old_e = attrs.events.get(key)
        attrs.events[key] = value
        return [NodeChange(path, "event", key, old_e, value)]
    if name == "NodeMeterMemento":
        meter = m.get("meter_", {})
        key = str(meter.get("n_", ""))
        value_m = int(meter.get("v_", 0))
        before = attrs.meters.get(key)
        attrs.meters[key] = Meter(
            key, int(meter.get("min_", 0)), int(meter.get("max_", 0)), int(meter.get("cc_", 0)), value_m
        )
        return [NodeChange(path, "meter", key, before.value if before else None, value_m)]
    if name == "NodeLabelMemento":
        label = m.get("label_", {})
        key = str(label.get("n_", ""))
        value_l = str(label.get("new_v_") or label.get("v_", ""))
        old_l = attrs.labels.get(key)
        attrs.labels[key] = value_l
        return [NodeChange(path, "label", key, old_l, value_l)]
    if name == "NodeVariableMemento":
        var = m.get("var_", {})
        key = str(var.get("n_", ""))
        value_v = str(var.get("v_", ""))
        old_v = node.variables.get(key)
        node.variables[key] = value_v
        return [NodeChange(path, "variable", key, old_v, value_v)]
    if name == "NodeLimitMemento":
        lim = m.get("limit_", {})
        key = str(lim.get("n_", ""))
        before_l = attrs.limits.get(key)
        used = int(lim.get("value_", 0))
        attrs.limits[key] = Limit(key, int(lim.get("lim_", 0)), used, tuple(lim.get("paths_", ())))
        return [NodeChange(path, "limit", key, before_l.value if before_l else None, used)]
    if name == "NodeInLimitMemento":
        inl = m.get("inlimit_", {})
        attrs.inlimits.append(
            InLimit(
                str(inl.get("n_", "")),
                str(inl.get("path_", "")),
                int(inl.get("tokens_", 1)),
                bool(inl.get("limit_this_node_only_", False)),
                bool(inl.get("limit_submission_", False)),
            )
        )
        return []
    if name == "FlagMemento":
        flag = m.get("flag_", {})
        bits = flag.get("flag_", 0) if isinstance(flag, dict) else 0
        late = bool(int(bits) & _LATE_BIT)
        old_late, node.late = node.late, late
        return [NodeChange(path, "late", old=old_late, new=late)] if old_late != late else []
    if name == "SubmittableMemento":
        old_try = node.try_no
        node.try_no = int(m.get("tryNo_", 0))
        node.rid = str(m.get("rid_", ""))
        node.jobs_password = str(m.get("paswd_", ""))
        node.abort_reason = str(m.get("abr_", ""))
        return [NodeChange(path, "try", old=old_try, new=node.try_no)] if old_try != node.try_no else []
    if name in _REFETCH:
        refetch.append(path)
        return [NodeChange(path, "attributes", name)]
    if name in _OTHER_ATTRIBUTES:
        return [NodeChange(path, "attributes", name)]
    if name in _QUIET:
        return []
    if name in _STRUCTURE:
        raise NeedsFullSync(f"nodes were added, removed or reordered under {path}")
    raise NeedsFullSync(f"unknown change {name!r} on {path}")


def replace_attributes(node: Node, fresh: Node) -> None:
    """Copy the attributes and variables of a re-read node onto the node in the tree (children untouched)."""
    node.variables = dict(fresh.variables)
    node.attrs = fresh.attrs
    node.state, node.suspended, node.late = fresh.state, fresh.suspended, fresh.late


def diff(old: Defs, new: Defs) -> list[NodeChange]:
    """What a whole new definition changed: server state, nodes added or removed, states, suspension, events,
    meters, labels and variables of the nodes in both."""
    changes: list[NodeChange] = []
    if old.server_state != new.server_state:
        changes.append(NodeChange("/", "server_state", old=old.server_state, new=new.server_state))
    before = {n.path: n for n in old}
    after = {n.path: n for n in new}
    for path in before.keys() - after.keys():
        changes.append(NodeChange(path, "removed"))
    for path, node in after.items():
        was = before.get(path)
        if was is None:
            changes.append(NodeChange(path, "added"))
            continue
        if was.state != node.state:
            changes.append(NodeChange(path, "state", old=was.state, new=node.state))
        if was.suspended != node.suspended:
            changes.append(NodeChange(path, "suspended", old=was.suspended, new=node.suspended))
        if was.late != node.late:
            changes.append(NodeChange(path, "late", old=was.late, new=node.late))
        for what, a, b in (
            ("event", was.attrs.events, node.attrs.events),
            ("label", was.attrs.labels, node.attrs.labels),
            ("variable", was.variables, node.variables),
        ):
            for key in sorted(a.keys() | b.keys()):
                if a.get(key) != b.get(key):
                    changes.append(NodeChange(path, what, key, a.get(key), b.get(key)))
        for key in sorted(was.attrs.meters.keys() | node.attrs.meters.keys()):
            ma, mb = was.attrs.meters.get(key), node.attrs.meters.get(key)
            if (ma.value if ma else None) != (mb.value if mb else None):
                changes.append(NodeChange(path, "meter", key, ma.value if ma else None, mb.value if mb else None))
    return changes
