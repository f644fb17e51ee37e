"""A live node tree: one whole definition, then ecflow_ui's news/sync polling with only the changes applied."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Protocol

from ecflow_remote.errors import EcflowRemoteError, ServerError, UnknownNode

from . import panels, sync
from .commands import Identity, Reply
from .defs import Defs, Node
from .wire import HEADER_SIZE, encode_frame, encode_json


class _Client(Protocol):
    """What a Watch needs of its client (AsyncEcflowClient): raw exchanges, its identity, its node reads."""

    @property
    def where(self) -> str: ...

    _identity: Identity

    async def _exchange_body(self, frame: bytes) -> bytes: ...

    def _decode(self, body: bytes) -> Reply: ...

    async def get_node(self, path: str) -> Node: ...


class Watch:
    """`async with client.watch(interval) as w:` holds `w.defs` up to date; `async for update in w` yields each
    poll that changed something, `await w.poll()` polls once now."""

    def __init__(self, client: _Client, interval: float = 1.0, suites: Sequence[str] | None = None) -> None:
        """`suites`: follow only these (a client handle registered for the watch's life, as ecflow_ui's suite
        filter); None: every suite."""
        if interval <= 0:
            raise ValueError(f"the watch interval must be positive, not {interval}")
        self.client = client
        self.interval = interval
        self.suites = None if suites is None else list(suites)
        self.handle = 0
        self._defs: Defs | None = None
        self.full_syncs = 0

    @property
    def defs(self) -> Defs:
        """The live tree; after a full resync it is a new object, so read it again after each update."""
        if self._defs is None:
            raise RuntimeError("use the watch in `async with`, which fetches the first definition")
        return self._defs

    async def __aenter__(self) -> Watch:
        if self.suites is not None:
            reply, _ = await self._ask(panels.ch_register_request(self.client._identity, self.suites))
            self.handle = panels.expect_handle(reply, self.client.where)
        try:
            await self._full_sync()
        except BaseException:
            await self._drop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Client handle 0 leaves nothing registered on the server; another one is dropped, as ecflow_ui does.
        await self._drop()

    async def _drop(self) -> None:
        handle, self.handle = self.handle, 0
        if handle:
            with contextlib.suppress(EcflowRemoteError, OSError):  # a server gone forgets its handles anyway
                await self._ask(panels.ch_drop_request(self.client._identity, handle))

    def __aiter__(self) -> AsyncIterator[sync.WatchUpdate]:
        return self._updates()

    async def _updates(self) -> AsyncIterator[sync.WatchUpdate]:
        while True:
            await asyncio.sleep(self.interval)
            update = await self.poll()
            if update.changes or update.full:
                yield update

    async def _ask(self, request: dict[str, Any]) -> tuple[Any, int]:
        body = await self.client._exchange_body(encode_frame(encode_json(request)))
        return self.client._decode(body), HEADER_SIZE + len(body)

    def request(self, api: int) -> dict[str, Any]:
        defs = self._defs
        state_no, modify_no = (defs.state_change_no, defs.modify_change_no) if defs is not None else (0, 0)
        return sync.sync_request(self.client._identity, api, state_no, modify_no, self.handle)

    async def _full_sync(self, spent: int = 0, applied: list[sync.NodeChange] | None = None) -> sync.WatchUpdate:
        # `applied`: changes an unusable reply already made in place, which the diff below can no longer see.
        reply, size = await self._ask(self.request(sync.SYNC_FULL))
        result = sync.apply_sync(self._defs, reply, self.client.where)
        self._defs = result.defs
        self.full_syncs += 1
        return self._update([*(applied or []), *result.changes], True, spent + size)

    def _update(self, changes: list[sync.NodeChange], full: bool, size: int) -> sync.WatchUpdate:
        defs = self.defs
        return sync.WatchUpdate(tuple(changes), full, size, defs.state_change_no, defs.modify_change_no)

    async def poll(self) -> sync.WatchUpdate:
        """One NEWS request, and a SYNC when the server has news (a whole definition when it says so)."""
        reply, spent = await self._ask(self.request(sync.NEWS))
        news = sync.news_of(reply, self.client.where)
        if news == sync.NO_NEWS:
            return self._update([], False, spent)
        if news == sync.DO_FULL_SYNC:
            return await self._full_sync(spent)
        reply, size = await self._ask(self.request(sync.SYNC))
        spent += size
        try:
            result = sync.apply_sync(self._defs, reply, self.client.where)
        except sync.NeedsFullSync as e:
            return await self._full_sync(spent, e.applied)
        self._defs = result.defs
        if result.full:
            self.full_syncs += 1
        for path in result.refetch:
            # Attributes kept as text (triggers, times, repeats) come back only with the node itself.
            try:
                fresh = await self.client.get_node(path)
                sync.replace_attributes(self.defs.find(path), fresh)
            except (UnknownNode, ServerError):
                return await self._full_sync(spent, result.changes)
        return self._update(result.changes, result.full, spent)
