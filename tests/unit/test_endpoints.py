"""Where services are placed under each method (endpoints.py): the pure placement, the same at the start
(plan.plan_for) and when services join a running tunnel (plan.merge), and Wanted's one JSON form."""

from __future__ import annotations

import json

import pytest

from ecflow_remote.endpoints import (
    MAX_HOSTS,
    Placement,
    Wanted,
    as_method,
    by_centre_names,
    check_aliases,
    next_alias,
    through_socks,
)
from ecflow_remote.errors import NoAddressLeft, PortInUse
from ecflow_remote.plan import Endpoint, Plan, added, merge, without
from ecflow_remote.tunnel.state import Check, TunnelState

NET = "127.77.9."
LOG1 = Wanted("logserver", "logserver1:9316", "logserver1", 9316, ("machine1 /lab",))
LOG3 = Wanted("logserver", "logserver3:9316", "logserver3", 9316, ("machine1 /ops",))


def placement(method: str, busy: frozenset[tuple[str, int]] = frozenset(), moves: bool = True) -> Placement:
    ports = iter(range(40000, 40100))
    return Placement(
        as_method(method),
        NET,
        is_free=lambda h, p: (h, p) not in busy,
        pick_port=lambda h: next(ports),
        moves=moves,
        socks_port=1080 if method == "socks" else None,
    )


def test_the_method_is_asked_in_one_place() -> None:
    assert [m for m in ("local", "socks", "hosts") if by_centre_names(as_method(m))] == ["socks", "hosts"]
    assert [m for m in ("local", "socks", "hosts") if through_socks(as_method(m))] == ["socks"]
    assert Plan("hosts", []).by_centre_names and not Plan("hosts", []).through_socks
    with pytest.raises(ValueError, match="'ssh' is not a method"):
        as_method("ssh")
    with pytest.raises(ValueError):
        Plan.from_json({"method": "ssh", "endpoints": []})


def test_local_places_on_127_0_0_1_and_names_only_a_log_server_that_kept_its_port() -> None:
    p = placement("local", busy=frozenset({("127.0.0.1", 4142)}))
    server = p.place("server", "machine1", 4141, "server m1")
    moved = p.place("server", "machine2", 4142, "server m2")
    log = p.place("logserver", "logserver1", 9316, "log server logserver1")
    second = p.place("logserver", "logserver2", 9316, "log server logserver2")  # 9316 is taken here now
    assert [(s.address, s.port, s.named) for s in (server, moved, log, second)] == [
        ("127.0.0.1", 4141, False),
        ("127.0.0.1", 40000, False),
        ("127.0.0.1", 9316, True),
        ("127.0.0.1", 40001, False),
    ]


def test_hosts_gives_each_host_the_next_address_and_its_own_port() -> None:
    p = placement("hosts")
    a = p.place("server", "machine1", 4141, "server m1")
    b = p.place("server", "machine1", 4142, "server m1b")
    c = p.place("logserver", "logserver1", 9316, "log server logserver1")
    assert [(s.address, s.port, s.named, s.forwarded) for s in (a, b, c)] == [
        (f"{NET}1", 4141, True, True),
        (f"{NET}1", 4142, True, True),
        (f"{NET}2", 9316, True, True),
    ]


def test_socks_sends_log_servers_through_the_front_and_forwards_ecflow_servers() -> None:
    p = placement("socks")
    log = p.place("logserver", "logserver1", 9316, "log server logserver1")
    server = p.place("server", "machine1", 4141, "server m1")
    assert (log.address, log.port, log.forwarded, log.named) == ("127.0.0.1", 1080, False, False)
    assert (server.address, server.port, server.forwarded, server.named) == (f"{NET}1", 4141, True, True)


def test_at_a_hosts_start_a_taken_port_is_refused_not_moved() -> None:
    p = placement("hosts", busy=frozenset({(f"{NET}1", 4141)}), moves=False)
    with pytest.raises(PortInUse, match=rf"{NET}1:4141 for server m1 is in use"):
        p.place("server", "machine1", 4141, "server m1")


def test_one_limit_for_the_addresses_at_the_start_and_on_joining() -> None:
    # 1 to 254: a /24's host numbers.
    assert next_alias([], NET) == f"{NET}1"
    assert next_alias([f"{NET}{MAX_HOSTS - 1}"], NET) == f"{NET}{MAX_HOSTS}"
    with pytest.raises(NoAddressLeft, match="no loopback address left"):
        next_alias([f"{NET}{MAX_HOSTS}"], NET)
    p = placement("hosts")
    for i in range(MAX_HOSTS):
        p.place("server", f"h{i}", 1, f"server h{i}")
    with pytest.raises(NoAddressLeft):
        p.place("server", "one-more", 1, "server one-more")


def test_addresses_not_on_lo0_yet_are_named_together_not_taken_for_ports_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # macOS routes only 127.0.0.1 to loopback: every alias the tunnel needs is said at once, with the command.
    from ecflow_remote import endpoints

    monkeypatch.setattr(endpoints, "_bindable", lambda address: False)
    p = placement("hosts", busy=frozenset({(f"{NET}1", 4141), (f"{NET}2", 9316)}), moves=False)
    p.place("server", "machine1", 4141, "server m1")
    p.place("logserver", "logserver1", 9316, "log server logserver1")
    assert p.unbound == [f"{NET}1", f"{NET}2"]
    with pytest.raises(NoAddressLeft, match=rf"sudo ifconfig lo0 alias {NET}1 up; sudo ifconfig lo0 alias {NET}2 up"):
        check_aliases(p.unbound)
    check_aliases([])  # nothing missing: nothing to say


def test_wanted_rows_round_trip_and_a_bad_one_is_refused() -> None:
    for w in (LOG3, Wanted("server", "s", "h", 1)):
        assert Wanted.from_json(json.loads(json.dumps(w.to_json()))) == w and w.valid()
    assert not Wanted("logserver", "a b:1", "a b", 1).valid()
    with pytest.raises(ValueError, match="bad kind 'bogus'"):
        Wanted.from_json({"kind": "bogus", "name": "n", "host": "h", "port": 1})
    with pytest.raises(ValueError, match="bad port '1'"):
        Wanted.from_json({"kind": "logserver", "name": "n", "host": "h", "port": "1"})


# ------------------------------------------------------------------------------------------------ joining (merge)


def base(method: str) -> Plan:
    if method == "local":
        server = Endpoint("server", "machine1", "machine1", 4141, "127.0.0.1", 4141)
        log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", 9316)
        return Plan("local", [server, log], hosts={"logserver1": "127.0.0.1"})
    server = Endpoint("server", "machine1", "machine1", 4141, f"{NET}1", 4141)
    if method == "socks":
        log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", 1080, False)
        return Plan("socks", [server, log], socks_port=1080, hosts={"machine1": f"{NET}1"})
    log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, f"{NET}2", 9316)
    return Plan("hosts", [server, log], hosts={"machine1": f"{NET}1", "logserver1": f"{NET}2"})


def wanted() -> list[Wanted]:
    return [
        LOG1,
        LOG3,
        Wanted("logserver", "logserver3.centre.int:9316", "logserver3.centre.int", 9316, ("machine1 /lab",)),
    ]


def merge_(
    plan: Plan, want: list[Wanted], busy: frozenset[tuple[str, int]] = frozenset(), user: str | None = None
) -> Plan:
    ports = iter(range(40000, 40100))
    return merge(plan, want, NET, lambda h, p: (h, p) not in busy, lambda h: next(ports), user)


def test_local_method_places_new_log_servers_on_their_own_port_where_free() -> None:
    plan = base("local")
    new = merge_(plan, wanted(), busy=frozenset({("127.0.0.1", 9316)}))
    joined = added(plan, new)
    # The short and the qualified name of one host are one log server (as ECF_LOGHOST may use either).
    assert [(e.host, e.origin, e.local_host, e.local_port) for e in joined] == [
        ("logserver3", "found", "127.0.0.1", 40000)
    ]
    assert joined[0].used_by == ("machine1 /ops", "machine1 /lab")
    # The profile's own log server keeps its origin and learns who uses it.
    own = next(e for e in new.endpoints if e.host == "logserver1")
    assert own.origin == "profile" and own.used_by == ("machine1 /lab",)
    # Moved off its port, logserver3 cannot be reached by name: not in the hosts view.
    assert new.hosts == {"logserver1": "127.0.0.1"}
    # Free on the machine, but logserver1's here already: the plan's own ports count as taken.
    free = merge_(plan, wanted())
    assert [(e.local_port, e.host) for e in added(plan, free)] == [(40000, "logserver3")]


def test_local_method_gives_a_kept_port_its_name() -> None:
    plan = Plan("local", [Endpoint("server", "m1", "machine1", 4141, "127.0.0.1", 4141)])
    new = merge_(plan, wanted())
    assert [(e.host, e.local_port) for e in added(plan, new)] == [("logserver1", 9316), ("logserver3", 40000)]
    assert new.hosts == {"logserver1": "127.0.0.1"}


def test_hosts_method_gives_a_new_host_the_next_alias_and_its_own_port() -> None:
    plan = base("hosts")
    new = merge_(plan, wanted())
    (e,) = added(plan, new)
    assert (e.host, e.local_host, e.local_port, e.forwarded) == ("logserver3", f"{NET}3", 9316, True)
    assert new.hosts["logserver3"] == f"{NET}3"
    # A second service of a known host shares its alias.
    more = merge_(new, [Wanted("server", "sys", "machine1", 4142, ("/lists/a",))], user="user1")
    (s,) = added(new, more)
    assert (s.local_host, s.local_port, s.origin, s.relay_user) == (f"{NET}1", 4142, "system", "user1")


def test_socks_method_reaches_found_log_servers_through_the_front() -> None:
    plan = base("socks")
    new = merge_(plan, wanted())
    (e,) = added(plan, new)
    assert (e.forwarded, e.local_host, e.local_port) == (False, "127.0.0.1", 1080)
    assert new.hosts == plan.hosts
    # ecFlow servers still need a loopback forward (proxychains cannot carry ecFlow's sockets).
    more = merge_(new, [Wanted("server", "sys", "machine7", 4141)])
    (s,) = added(new, more)
    assert s.forwarded and s.local_host == f"{NET}2" and more.hosts["machine7"] == s.local_host


def test_merging_again_adds_nothing_and_a_clashing_name_is_told_apart() -> None:
    plan = base("hosts")
    once = merge_(plan, wanted())
    assert merge_(once, wanted()) == once
    clash = merge_(once, [Wanted("server", "machine1", "machine9", 4141)])
    (e,) = added(once, clash)
    assert e.name == "machine1@machine9:4141" and clash.endpoint("machine1").host == "machine1"
    assert without(clash, [e]).hosts == once.hosts


def test_no_alias_left_is_refused_on_joining_too() -> None:
    hosts = {f"h{i}": f"{NET}{i}" for i in range(1, MAX_HOSTS + 1)}
    with pytest.raises(NoAddressLeft, match="no loopback address left"):
        merge_(Plan("hosts", [], hosts=hosts), [Wanted("server", "s", "new", 1)])


def test_endpoints_and_state_keep_origin_and_users_through_json() -> None:
    e = Endpoint("logserver", "l:1", "l", 1, "127.0.0.1", 2, origin="found", used_by=("m /s",))
    back = Check.from_json(json.loads(json.dumps(Check(e, True).to_json()))).endpoint
    assert back == e
    # An older state without the fields, and an unknown origin, still read.
    assert Endpoint.from_json({**e.to_json(), "origin": "?", "used_by": None}).origin == "profile"
    state = TunnelState("up", "local", "/p", 1, found_note="note", found_rounds=2, plan=Plan("local", [e]))
    again = TunnelState.from_json(json.loads(json.dumps(state.to_json())))
    assert (again.found_note, again.found_rounds) == ("note", 2)
    assert again.plan is not None and again.plan.endpoints == [e]
