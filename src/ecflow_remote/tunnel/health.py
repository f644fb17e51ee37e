"""Is each Centre service answering now? Concurrent ecFlow pings and log-server version checks, one timeout each."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping

from ecflow_remote.plan import Endpoint
from ecflow_remote.tunnel.clients import Clients
from ecflow_remote.tunnel.state import Check

# Why a server that failed its check cannot answer while `up` waits (causes.Why.explain), or None.
Why = Callable[[Endpoint, Exception], Awaitable[str | None]]


async def check_server(clients: Clients, endpoint: Endpoint, timeout: float, version: str | None = None) -> Check:
    """An ecFlow ping and a version request, as the server's configured user (white list, custom user). `version`:
    the one a recent check got, and then a ping alone."""
    return (await _check_server(clients, endpoint, timeout, version))[0]


async def _check_server(
    clients: Clients, endpoint: Endpoint, timeout: float, version: str | None = None
) -> tuple[Check, Exception | None]:
    client = clients.ecflow(endpoint.name, connect_timeout=timeout, read_timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            if version is not None:
                return Check(endpoint, True, round(await client.ping() * 1000, 2), version), None
            # Side by side: each is a new connection (two round trips through ssh's own channels), and `up` waits.
            latency, version = await asyncio.gather(client.ping(), client.server_version())
    except Exception as e:  # every failure is a status to show, not a crash
        if _direct(clients, endpoint) and not isinstance(e, TimeoutError):
            # ssh's forward socket only drops a refused channel: through the listener, ssh's master says why (and
            # causes.py can tell a lasting cause). Only failures pay for this second try.
            return await _check_server(dataclasses.replace(clients, direct={}), endpoint, timeout, version)
        return Check(endpoint, False, error=words(e)), e
    return Check(endpoint, True, round(latency * 1000, 2), version), None


def _direct(clients: Clients, endpoint: Endpoint) -> bool:
    return (endpoint.host, endpoint.port) in clients.direct


async def check_logserver(clients: Clients, endpoint: Endpoint, timeout: float) -> Check:
    client = clients.logserver(endpoint.host, endpoint.port, connect_timeout=timeout, read_timeout=timeout)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            version = await client.version()
    except Exception as e:
        if _direct(clients, endpoint) and not isinstance(e, TimeoutError):  # as _check_server
            return await check_logserver(dataclasses.replace(clients, direct={}), endpoint, timeout)
        return Check(endpoint, False, error=words(e))
    return Check(endpoint, True, round((time.perf_counter() - t0) * 1000, 2), version)


async def check_all(
    clients: Clients,
    timeout: float = 3.0,
    why: Why | None = None,
    versions: Mapping[tuple[str, int], str] | None = None,
    answered: Mapping[tuple[str, int], Check] | None = None,
) -> list[Check]:
    """All endpoints at once: the whole check takes as long as the slowest one, never the sum. With `why`, each
    server that failed is then looked into, one after the other (each asks the far end once more; all within one
    more `timeout`), and marked lasting, in the words `why` gives, when waiting cannot change it. `versions`: the
    ecFlow servers' versions (by host and port) a recent check got: those are only pinged. `answered`: log servers'
    recent passed checks (by host and port), given again unasked."""
    plan = clients.plan
    known, passed = versions or {}, answered or {}
    servers = asyncio.gather(*(_check_server(clients, e, timeout, known.get((e.host, e.port))) for e in plan.servers()))
    asked = [e for e in plan.logservers() if (e.host, e.port) not in passed]
    logservers = asyncio.gather(*(check_logserver(clients, e, timeout) for e in asked))
    checked, logs = await asyncio.gather(servers, logservers)
    given = [passed[(e.host, e.port)] for e in plan.logservers() if (e.host, e.port) in passed]
    later = None
    if given and any(error is not None for _, error in checked):
        # An ecFlow server failed: the link or the Centre may be in trouble, so the log servers are asked too.
        later = asyncio.gather(*(check_logserver(clients, c.endpoint, timeout) for c in given))
    # All of them within one more `timeout`: the supervisor waits for its checks (a master on a dead link would
    # hold each question that long).
    deadline = asyncio.get_running_loop().time() + timeout
    checks = []
    for check, error in checked:
        cause = None
        if why is not None and error is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    cause = await why(check.endpoint, error)
        checks.append(dataclasses.replace(check, error=cause, lasting=True) if cause else check)
    if later is not None:
        given = await later
    order = {(e.host, e.port): i for i, e in enumerate(plan.logservers())}
    logs = sorted([*logs, *given], key=lambda c: order[(c.endpoint.host, c.endpoint.port)])
    return [*checks, *logs]


def words(e: BaseException) -> str:
    """A failed check in a few words for the status table."""
    if isinstance(e, TimeoutError):
        return "no answer (timed out)"
    return str(e) or type(e).__name__


class Rounds:
    """The supervisor's health rounds: one event loop for its whole life (not one per round), and each ecFlow
    server's version asked once every VERSION_EVERY seconds, or again after the server failed a check; a ping
    alone in between (one connection per server, not two: what an idle tunnel costs is mostly its rounds). Log
    servers are asked at the same pace: in between, one that answered is asked again only once an ecFlow server
    of the round failed (a link or Centre trouble), and a failed one every round. Why: nothing waits on a log
    server's check (a dead link is the network watch's, the keepalives' and the pings' to notice), and their
    version request is the dearest of a round (the server forks for each)."""

    VERSION_EVERY = 60.0

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None
        self._versions: dict[tuple[str, int], str] = {}
        self._answered: dict[tuple[str, int], Check] = {}
        self._versions_until = 0.0

    def check(self, clients: Clients, timeout: float = 3.0, why: Why | None = None) -> list[Check]:
        now = time.monotonic()
        fresh = now < self._versions_until
        if self._runner is None:
            self._runner = asyncio.Runner()
        answered = self._answered if fresh else None
        # On the runner's loop itself: Runner.run would install and remove a SIGINT handler each round.
        checks = self._runner.get_loop().run_until_complete(
            check_all(clients, timeout, why, self._versions if fresh else None, answered)
        )
        if not fresh:
            self._versions_until = now + self.VERSION_EVERY
        self._answered = {
            (c.endpoint.host, c.endpoint.port): c for c in checks if c.endpoint.kind == "logserver" and c.reachable
        }
        self._versions = {
            (c.endpoint.host, c.endpoint.port): c.version
            for c in checks
            if c.endpoint.kind == "server" and c.reachable and c.version is not None
        }
        return checks

    def forget(self) -> None:
        """Ask every version again next round (a new start of the legs: servers may have changed meanwhile)."""
        self._versions_until = 0.0

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
