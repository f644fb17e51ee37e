"""The live side: one feed per profile server keeps its definition current and pushes what changed to every open
page as server-sent events; the tunnel's status is pushed the same way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.web import adapter, model

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, Defs, Node
    from ecflow_remote.tunnel.handle import Tunnel

RETRY_EVERY = 3.0  # a server that did not answer (or no tunnel) is tried again after this
STATUS_EVERY = 10.0
# A page that stops reading (a suspended laptop's tab) is dropped once this many messages wait for it: it
# reconnects by itself and starts again from a fresh snapshot.
MAX_BACKLOG = 1000


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; JSON has no raw newlines, so one data line is enough."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Feed:
    """One server's definition, kept current by a watcher (incremental sync, or polling until it is available)."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.defs: Defs | None = None
        self.index: dict[str, Node] = {}
        self.error: str | None = None
        self.tree_event: bytes | None = None  # encoded once, sent to every new page
        self.updated = 0.0
        self._poke = asyncio.Event()
        # The suite filter: the suites this feed follows (a client handle on the server), None for all.
        self.suites: list[str] | None = None
        self._restart = False
        self.task: asyncio.Task[None] | None = None

    def follow(self, suites: list[str] | None) -> None:
        """Follow only these suites from now on (the watch starts again with its own client handle)."""
        self.suites = suites
        self._restart = True
        self.poke()

    def poke(self) -> None:
        """Poll now (after an action: its effect shows without waiting for the next interval)."""
        self._poke.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._poke.wait()
        self._poke.clear()

    def snapshot(self) -> list[bytes]:
        if self.tree_event is None and self.defs is not None:
            self.tree_event = sse("tree", model.tree_json(self.name, self.defs))
        if self.tree_event is not None:
            return [self.tree_event]
        if self.error is not None:
            return [sse("server_error", {"server": self.name, "error": self.error})]
        return []

    def _new_tree(self, defs: Defs) -> None:
        self.defs, self.index, self.error = defs, model.path_index(defs), None
        self.tree_event = sse("tree", model.tree_json(self.name, defs))
        self.hub.publish(self.tree_event)

    async def run(self) -> None:
        while True:
            watcher: adapter.DefsWatcher | None = None
            try:
                watcher = await self.hub.open_watch(self.name)
                self._new_tree(watcher.defs)
                self.updated = time.time()
                while True:
                    # A state change reaches the page within this plus one round trip.
                    await self._pause(self.hub.interval or watcher.interval)
                    if self._restart:
                        self._restart = False
                        break  # the watcher is closed below and opened again with the new suites
                    update = await watcher.poll()
                    self.updated = time.time()
                    if update.full:
                        self._new_tree(watcher.defs)
                        continue
                    defs = watcher.defs
                    if defs is not self.defs:
                        # Polling hands over a new tree each time (the incremental sync updates one in place).
                        self.defs, self.index = defs, model.path_index(defs)
                    if update.states or update.server_state:
                        # Encoded again only when a page opens (snapshot), not at each change.
                        self.tree_event = None
                        self.hub.publish(sse("states", model.states_json(self.name, defs, self.index, update.states)))
                    if update.touched:
                        self.hub.publish(sse("touched", {"server": self.name, "paths": sorted(update.touched)}))
            except asyncio.CancelledError:
                raise
            except (EcflowRemoteError, OSError, ValueError) as e:
                message = str(e) or type(e).__name__
                if message != self.error:
                    self.error, self.defs, self.index, self.tree_event = message, None, {}, None
                    self.hub.publish(sse("server_error", {"server": self.name, "error": message}))
                await self._pause(RETRY_EVERY)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.close()


class Hub:
    """Every feed, the tunnel's status, and the pages listening."""

    def __init__(
        self,
        tunnel: Tunnel,
        *,
        interval: float | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        read_only: bool = False,
    ) -> None:
        self.tunnel = tunnel
        # `web --read-only`: the page offers no writes and the server refuses them (app.guard_middleware).
        self.read_only = read_only
        self.interval = interval
        self.feeds = {s.name: Feed(self, s.name) for s in tunnel.profile.servers}
        self.pages: set[asyncio.Queue[bytes | None]] = set()
        self.status: dict[str, Any] | None = None
        self._status = status or self._read_status
        self._tasks: list[asyncio.Task[None]] = []

    def client_for(self, server: str) -> AsyncEcflowClient:
        return self.tunnel.ecflow_client(server)

    async def open_watch(self, server: str) -> adapter.DefsWatcher:
        """The live view of one server (its incremental sync), its tree read at once."""
        return await adapter.open_watch(self.client_for(server), self.feed(server).suites)

    def feed(self, server: str) -> Feed:
        feed = self.feeds.get(server)
        if feed is None:
            raise EcflowRemoteError(f"no server {server!r} in the profile (servers: {', '.join(self.feeds)})")
        return feed

    # ------------------------------------------------------------------------------------------- pages
    def subscribe(self) -> asyncio.Queue[bytes | None]:
        """A new page's queue, primed with everything it needs to draw: servers, status, every tree."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        queue.put_nowait(sse("hello", self.hello()))
        if self.status is not None:
            queue.put_nowait(sse("status", self.status))
        for feed in self.feeds.values():
            for event in feed.snapshot():
                queue.put_nowait(event)
        self.pages.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.pages.discard(queue)

    def publish(self, event: bytes) -> None:
        for queue in list(self.pages):
            if queue.qsize() >= MAX_BACKLOG:
                self.pages.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def hello(self) -> dict[str, Any]:
        from ecflow_remote.suites import SERVER_STATE_COLOURS, STATE_COLOURS

        return {
            "colours": STATE_COLOURS,
            "server_colours": SERVER_STATE_COLOURS,
            "profile": str(self.tunnel.profile.path),
            "servers": [{"name": s.name, "host": s.host, "port": s.port} for s in self.tunnel.profile.servers],
            "actions": list(adapter.node_actions()),
            "destructive": sorted(adapter.destructive_actions()),
            "read_only": self.read_only,
        }

    # ------------------------------------------------------------------------------------------- status
    def _read_status(self) -> dict[str, Any]:
        from ecflow_remote import status

        return status.report(self.tunnel, live=False)

    async def _status_loop(self) -> None:
        while True:
            with contextlib.suppress(EcflowRemoteError, OSError):
                # Reading the certificate runs ssh -G and ssh-keygen: not on the event loop.
                self.status = await asyncio.to_thread(self._status)
                self.publish(sse("status", self.status))
            await asyncio.sleep(STATUS_EVERY)

    # ------------------------------------------------------------------------------------------- life
    def start(self) -> None:
        self._tasks = [asyncio.create_task(f.run(), name=f"feed {f.name}") for f in self.feeds.values()]
        self._tasks.append(asyncio.create_task(self._status_loop(), name="status"))
        for feed, task in zip(self.feeds.values(), self._tasks, strict=False):
            feed.task = task

    async def stop(self) -> None:
        for queue in list(self.pages):
            queue.put_nowait(None)  # ends each page's event stream
        self.pages.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
