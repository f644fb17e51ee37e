"""Is each Centre service answering now? Concurrent ecFlow pings and log-server version checks, one timeout each."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from ecflow_remote.plan import Endpoint, Plan


@dataclass
class Check:
    endpoint: Endpoint
    reachable: bool
    latency_ms: float | None = None
    version: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.endpoint.to_json()
        data.update({k: v for k, v in asdict(self).items() if k != "endpoint"})
        return data


async def check_server(
    plan: Plan, endpoint: Endpoint, timeout: float, user: str | None = None, auth: dict[str, Any] | None = None
) -> Check:
    """`auth`: the AsyncEcflowClient identity keywords (user, custom_user, password) for this server."""
    from ecflow_remote.clients.ecflow import AsyncEcflowClient

    route = plan.route(endpoint)
    who = auth if auth is not None else {"user": user}
    client = AsyncEcflowClient(
        route.host, route.port, **route.proxy_kwargs(), connect_timeout=timeout, read_timeout=timeout, **who
    )
    try:
        async with asyncio.timeout(timeout):
            latency = await client.ping()
            version = await client.server_version()
    except Exception as e:  # every failure is a status to show, not a crash
        return Check(endpoint, False, error=_words(e))
    return Check(endpoint, True, round(latency * 1000, 2), version)


async def check_logserver(plan: Plan, endpoint: Endpoint, timeout: float) -> Check:
    from ecflow_remote.clients.logserver import AsyncLogServerClient

    route = plan.route(endpoint)
    client = AsyncLogServerClient(
        route.host, route.port, **route.proxy_kwargs(), connect_timeout=timeout, read_timeout=timeout
    )
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            version = await client.version()
    except Exception as e:
        return Check(endpoint, False, error=_words(e))
    return Check(endpoint, True, round((time.perf_counter() - t0) * 1000, 2), version)


async def check_all(
    plan: Plan,
    timeout: float = 3.0,
    users: dict[str, str | None] | None = None,
    auth: dict[str, dict[str, Any]] | None = None,
) -> list[Check]:
    """All endpoints at once: the whole check takes as long as the slowest one, never the sum."""
    users = users or {}
    auth = auth or {}
    tasks = [check_server(plan, e, timeout, users.get(e.name), auth.get(e.name)) for e in plan.servers()]
    tasks += [check_logserver(plan, e, timeout) for e in plan.logservers()]
    return list(await asyncio.gather(*tasks))


def _words(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "no answer (timed out)"
    return str(e) or type(e).__name__
