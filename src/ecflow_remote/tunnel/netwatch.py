"""What a network change means for the tunnel's ssh connection: nothing, a probe through its master, or a
reconnect at once — so a new home address (Wi-Fi to a phone's hotspot, a VPN up or down) costs about a second,
not the 12 s ssh's keepalives take to give up on a dead link (they stay the fallback).

Only what may concern the connection is looked into (`concerns`): a route whose destination covers the first hop's
address, the connection's own address, its interface's link; anything else (a container's veth, another
namespace's churn, a VPN's routes elsewhere) costs a parse, not a route lookup. The system's events come from
netevents.py on the tunnel's event loop; every decision is a pure function below.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ecflow_remote.access.pipe import LoopThread
from ecflow_remote.transport import control
from ecflow_remote.tunnel import netevents
from ecflow_remote.tunnel.netevents import Change

# A probe is one round trip through the master (home, jump host, workstation and back): a link slower than this
# is not one to keep a tunnel on, and a reconnect after a wrong verdict costs about half a second.
PROBE_TIMEOUT = 1.0
# Followed in place of a first hop that ssh reaches through a proxy of the user's own (a ProxyCommand): the way to
# the rest of the world (TEST-NET-1, RFC 5737: routed by the default route, never answered; no packet is sent).
ELSEWHERE = (socket.AF_INET, ("192.0.2.1", 9))

Verdict = Literal["keep", "wait", "probe", "reconnect"]


@dataclass(frozen=True)
class Look:
    """The way to the first hop as the system routes it now."""

    source: str | None  # the local address the kernel sends from to the first hop now (None: no route)
    present: bool  # whether the connection's own local address is still one of this machine's


def verdict(used: str | None, before: str | None, now: Look, stale: bool) -> Verdict:
    """What to do after a change. `used`: the local address the ssh connection went out from (None: not known —
    the first hop is behind a proxy of the user's own); `before`: the source at the last look; `stale`: something
    happened that may have broken the connection without changing its route (a carrier back, as on waking from
    sleep; events the system dropped)."""
    if used is None:
        return "probe"  # nothing to compare with: ask the connection itself
    if not now.present:
        return "reconnect"  # its address is gone: no answer can come back to it
    if now.source is None:
        return "wait"  # no way to the first hop at all: nothing to probe over, nor to reconnect over
    if now.source != before or stale:
        return "probe"  # a new way to the first hop (a VPN up or down), or the old one back after none
    return "keep"  # another interface's business (a container's, another tunnel's)


def concerns(change: Change, toward: str | None, source: str | None, watched: int | None) -> bool:
    """Whether `change` may concern a connection to `toward` (an address; None: not known) that goes out from
    `source` on interface `watched` (None: not known): a route whose destination covers `toward`, an address change
    of `source` or on `watched`, a link change of `watched`, or events the system dropped."""
    if change.kind == "route":
        return toward is None or change.dst is None or _covers(change.dst, toward)
    if change.kind == "address":
        return change.address == source or (watched is not None and change.index == watched)
    if change.kind == "link":
        return watched is None or change.index == watched
    return True  # "lost": anything may have changed


def _covers(dst: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return True  # not understood: looked into


def carrier_back(known: dict[int, bool], changes: Iterable[Change], watched: int | None = None) -> bool:
    """Whether the interface `watched` (None: any) got its carrier back after it had been seen without one (a link
    cut and restored, a Wi-Fi after sleep); `known` (interface -> carrier) is updated for every interface."""
    back = False
    for change in changes:
        if change.kind != "link" or change.index is None:
            continue
        if not change.added:
            known.pop(change.index, None)
            continue
        returned = bool(change.carrier) and known.get(change.index) is False
        back = back or (returned and watched in (None, change.index))
        known[change.index] = bool(change.carrier)
    return back


def note_addresses(interfaces: dict[str, int], changes: Iterable[Change]) -> None:
    """Keep `interfaces` (this machine's addresses -> their interface) as the system reports them."""
    for change in changes:
        if change.kind == "address" and change.address is not None and change.index is not None:
            if change.added:
                interfaces[change.address] = change.index
            else:
                interfaces.pop(change.address, None)


def route_source(family: int, address: Any) -> str | None:
    """The local address the system would send from to `address` now (a UDP connect: a route lookup, no packet);
    None when there is no route."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(address)
            return str(s.getsockname()[0])
    except OSError:
        return None


def is_local(family: int, address: str) -> bool:
    """Whether `address` is still one of this machine's (it can be bound); True when the system will not say."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
    except OSError as e:
        return e.errno != errno.EADDRNOTAVAIL
    return True


class NetWatch:
    """Watches the system's network changes for one tunnel, on its event loop. `connected()` after each start of
    the legs, `disconnected()` when they stop; `lost` says why the connection is taken for dead (the supervisor
    then reconnects, and `on_lost` is called on the loop: a supervisor waiting on events is woken by it)."""

    def __init__(self, on_lost: Callable[[], None] | None = None, on_moved: Callable[[], None] | None = None) -> None:
        self.on_lost = on_lost
        # Called on the loop after a change that concerned the connection and left it standing: the link may
        # differ now (the far-side agent, if it runs, measures it at once).
        self.on_moved = on_moved
        self.lost: str | None = None
        self.probes = 0  # probes sent, for tests
        self.looked = 0  # changes that concerned the connection (a route lookup each), for tests
        self._loop: asyncio.AbstractEventLoop | None = None
        self._control: Path | None = None
        self._watcher: netevents.Watcher | None = None
        self._generation = 0  # one per connection: what a stale task finds is dropped
        self._connected = False
        self._hop: tuple[int, Any] | None = None  # the first hop's family and socket address, once resolved
        # The way followed: to the first hop, or (not known) to ELSEWHERE, whose source address is then _elsewhere.
        self._toward: tuple[int, Any] | None = None
        self._elsewhere: str | None = None
        self._used: str | None = None
        self._before: str | None = None
        self._carrier: dict[int, bool] = {}
        self._interfaces: dict[str, int] = {}
        self._resolving: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ from the supervisor's thread
    def start(self, io: LoopThread | None, control_socket: Path) -> list[str]:
        """Watch on the tunnel's loop, probing through the master at `control_socket`; a warning when nothing is
        watched."""
        if io is None:
            return []
        loop = self._loop = io.loop
        self._control = control_socket

        async def open_watcher() -> str | None:
            self._watcher, note = netevents.watch(loop, self._changed)
            return note

        try:
            note = asyncio.run_coroutine_threadsafe(open_watcher(), loop).result(5)
        except concurrent.futures.TimeoutError:
            note = "network changes are not watched (the tunnel's loop did not answer): keepalives notice a dead link"
        return [note] if note else []

    def connected(self, first_hop: Callable[[], tuple[str, int] | None]) -> None:
        """The legs are up: learn which address the connection goes out from (first_hop() runs off the loop: it
        may ask ssh -G, and the name may need a lookup)."""
        self._generation += 1
        self.lost = None  # here, not on the loop: the supervisor reads it as soon as this returns
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connect, self._generation, first_hop)

    def disconnected(self) -> None:
        self._generation += 1
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._disconnect)

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return

        async def close() -> None:
            self._disconnect()
            if self._watcher is not None:
                self._watcher.stop()
                self._watcher = None

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(close(), loop).result(5)

    # ------------------------------------------------------------------ on the loop
    def _connect(self, generation: int, first_hop: Callable[[], tuple[str, int] | None]) -> None:
        self._disconnect()
        self._connected = True
        self._resolving = asyncio.ensure_future(self._resolve(generation, first_hop))

    def _disconnect(self) -> None:
        self._connected = False
        self._hop = self._toward = self._used = self._elsewhere = self._before = None
        for task in (self._resolving, self._probing):
            if task is not None:
                task.cancel()
        self._resolving = self._probing = None

    async def _resolve(self, generation: int, first_hop: Callable[[], tuple[str, int] | None]) -> None:
        loop = asyncio.get_running_loop()
        infos: list[Any] = []
        with contextlib.suppress(Exception):  # not known: every change is probed
            hop = await loop.run_in_executor(None, first_hop)
            if hop is not None:
                infos = await loop.getaddrinfo(*hop, type=socket.SOCK_STREAM)
        if generation != self._generation:
            return
        if infos:
            self._hop = self._toward = (infos[0][0], infos[0][4])  # ssh's first choice too
            self._used = self._before = route_source(*self._hop)
        else:  # not known: every change that may concern the default route is probed
            self._toward = ELSEWHERE
            self._elsewhere = route_source(*ELSEWHERE)

    def _changed(self, changes: list[Change]) -> None:
        note_addresses(self._interfaces, changes)
        # Only the connection's own interface counts (containers and other tunnels come and go); not known: any.
        source = self._used if self._used is not None else self._elsewhere
        watched = self._interfaces.get(source) if source is not None else None
        stale = carrier_back(self._carrier, changes, watched) or any(c.kind == "lost" for c in changes)
        if not self._connected or self.lost is not None or not _done(self._resolving):
            return  # not up, already lost, or still learning its address (milliseconds after each start)
        toward = str(self._toward[1][0]) if self._toward is not None else None
        if not stale and not any(concerns(c, toward, source, watched) for c in changes):
            return
        self.looked += 1
        if self._hop is None:
            look = Look(None, True)
        else:
            look = Look(route_source(*self._hop), self._used is None or is_local(self._hop[0], self._used))
        step = verdict(self._used, self._before, look, stale)
        moved, self._before = look.source != self._before, look.source
        if step == "reconnect":
            self._lose(f"the network changed ({self._used} is no longer this machine's address)")
        elif step == "probe" and _done(self._probing):  # one in flight answers for this change too
            why = "the network changed"
            if self._used is not None:
                why = f"the route to the first hop changed (now from {look.source})" if moved else "the link came back"
            self._probing = asyncio.ensure_future(self._probe(self._generation, why))
        if step in ("keep", "probe") and self.on_moved is not None:
            self.on_moved()

    async def _probe(self, generation: int, why: str) -> None:
        assert self._control is not None
        self.probes += 1
        # The far sshd's refusal of PROBE_TARGET (or anything the master says) proves nothing is lost; silence does.
        answer = await control.ask(self._control, control.PROBE_TARGET, PROBE_TIMEOUT)
        if generation == self._generation and not answer.answered and self.lost is None:
            self._lose(f"{why} and the connection did not answer within {PROBE_TIMEOUT:g} s")

    def _lose(self, reason: str) -> None:
        self.lost = reason
        if self._probing is not None and self._probing is not asyncio.current_task():
            self._probing.cancel()
        if self.on_lost is not None:
            self.on_lost()


def _done(task: asyncio.Task[None] | None) -> bool:
    return task is None or task.done()
