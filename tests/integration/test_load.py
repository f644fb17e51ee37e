"""Load through the tunnel: 200 concurrent ecFlow requests and 50 concurrent log-server reads, all exact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow import AsyncEcflowClient
from ecflow_remote.clients.logserver import AsyncLogServerClient
from ecflow_remote.net import free_port
from ecflow_remote.tunnel.handle import Tunnel

pytestmark = pytest.mark.integration


async def _ecflow_burst(tunnel: Tunnel, n: int) -> list[str]:
    clients = [
        AsyncEcflowClient(*tunnel.endpoint(name), connect_timeout=20, read_timeout=30)
        for name in ("machine1", "machine2")
    ]
    # The version: a full request and reply each, and stable (the trees change as jobs run at the Centre).
    return await asyncio.gather(*(clients[i % 2].server_version() for i in range(n)))


async def _log_burst(tunnel: Tunnel, paths: list[str], n: int) -> list[bytes]:
    plan = tunnel.plan()
    clients = []
    for e in plan.logservers():
        route = plan.route(e)
        clients.append(
            AsyncLogServerClient(route.host, route.port, **route.proxy_kwargs(), connect_timeout=20, read_timeout=30)
        )

    async def one(i: int) -> bytes:
        _, data = await clients[i % 2].getf(paths[i % 2])
        return data

    return await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.parametrize("method", ["local", "socks"])
def test_concurrent_requests_all_exact(tunnel_up: Callable[..., Tunnel], centre: Any, method: str) -> None:
    tunnel = tunnel_up(method, **({"socks_port": free_port()} if method == "socks" else {}))
    # The reference: each server asked once, quietly.
    reference = asyncio.run(_ecflow_burst(tunnel, 2))
    got = asyncio.run(_ecflow_burst(tunnel, 200))
    assert len(got) == 200
    mismatched = [i for i, text in enumerate(got) if text != reference[i % 2]]
    assert not mismatched, f"{len(mismatched)} of 200 ecFlow replies differ"

    # Both log servers, each its own suite's job output (logserver1 serves lab, logserver2 ops).
    paths = [str(centre.jobout(centre.server("machine1"))), str(centre.jobout(centre.server("machine2")))]
    on_disk = [Path(p).read_bytes() for p in paths]
    data = asyncio.run(_log_burst(tunnel, paths, 50))
    assert [d == on_disk[i % 2] for i, d in enumerate(data)] == [True] * 50
    state = tunnel.state()
    assert state is not None and state.state == "up"
