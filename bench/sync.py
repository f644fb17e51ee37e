"""Incremental sync against a whole `get` on a 10 000-task suite: bytes and time per small update.

Starts a throwaway ecflow_server (loopback port, temporary ECF_HOME, left halted so no job runs), loads the suite,
then, round after round, suspends or resumes one task and measures what the watcher pays to see it (news + sync)
against what a poller pays (a whole `get` and its parse). Run: .venv/bin/python bench/sync.py [TASKS]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROUNDS = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _suite_text(tasks: int, per_family: int = 100) -> str:
    lines = ["suite big", "  edit ECF_LOGHOST 'logs'", "  edit ECF_LOGPORT '9316'"]
    for f in range((tasks + per_family - 1) // per_family):
        lines.append(f"  family f{f}")
        for t in range(min(per_family, tasks - f * per_family)):
            lines.append(f"    task t{t}")
            lines.append("      meter progress 0 100")
        lines.append("  endfamily")
    lines.append("endsuite")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def throwaway_server(tasks: int) -> Iterator[int]:
    """An ecflow_server on a free loopback port with the big suite loaded; stopped and removed afterwards."""
    if shutil.which("ecflow_server") is None:
        sys.exit("bench/sync.py needs ecflow_server (sh scripts/install-deps)")
    home = Path(tempfile.mkdtemp(prefix="ecflow-sync-bench-"))
    port = _free_port()
    env = {**os.environ, "ECF_HOME": str(home), "ECF_PORT": str(port), "ECF_HOST": "127.0.0.1"}
    server = subprocess.Popen(
        ["ecflow_server", "--port", str(port)], cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["ecflow_client", "--ping"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the throwaway ecflow_server did not start")
            time.sleep(0.2)
        definition = home / "big.def"
        definition.write_text(_suite_text(tasks))
        subprocess.run(["ecflow_client", "--load", str(definition)], env=env, check=True, capture_output=True)
        subprocess.run(["ecflow_client", "--begin", "big"], env=env, check=True, capture_output=True)
        yield port
    finally:
        # A throwaway server: nothing of it is kept, so no graceful stop is needed.
        server.kill()
        server.wait()
        shutil.rmtree(home, ignore_errors=True)


async def measure(port: int, tasks: int) -> None:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient
    from ecflow_remote.clients.ecflow.defs import parse_defs
    from ecflow_remote.clients.ecflow.wire import HEADER_SIZE

    client = AsyncEcflowClient("127.0.0.1", port, read_timeout=120)
    actor = AsyncEcflowClient("127.0.0.1", port)

    get_bytes: list[int] = []
    get_times: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        body = await client._exchange_body(client._get_frame())
        text = client._decode(body).data["value1"]
        parse_defs(text)
        get_times.append(time.perf_counter() - t0)
        get_bytes.append(HEADER_SIZE + len(body))

    poll_bytes: list[int] = []
    poll_times: list[float] = []
    idle_bytes: list[int] = []
    idle_times: list[float] = []
    families = (tasks + 99) // 100
    async with client.watch() as w:
        assert sum(1 for n in w.defs if n.is_task) == tasks
        for i in range(ROUNDS):
            t0 = time.perf_counter()
            idle = await w.poll()
            idle_times.append(time.perf_counter() - t0)
            idle_bytes.append(idle.reply_bytes)
            path = f"/big/f{i % families}/t{i % min(tasks, 100)}"  # a task that exists at any size
            await actor.node_action("suspend", path)
            t0 = time.perf_counter()
            update = await w.poll()
            poll_times.append(time.perf_counter() - t0)
            poll_bytes.append(update.reply_bytes)
            if not update.full:
                assert [(c.path, c.what) for c in update.changes] == [(path, "suspended")], update.changes
            assert w.defs.find(path).suspended
        full_syncs = w.full_syncs

    def ms(samples: list[float]) -> float:
        return statistics.median(samples) * 1000

    print(f"suite of {tasks} tasks, ecflow_server 5.9.2 on loopback, median of {ROUNDS} rounds")
    print(f"  whole get + parse      : {statistics.median(get_bytes):>10.0f} bytes {ms(get_times):8.2f} ms")
    print(f"  watch, one task change : {statistics.median(poll_bytes):>10.0f} bytes {ms(poll_times):8.2f} ms")
    print(f"  watch, nothing new     : {statistics.median(idle_bytes):>10.0f} bytes {ms(idle_times):8.2f} ms")
    print(
        f"  ratio get/watch        : {statistics.median(get_bytes) / statistics.median(poll_bytes):10.0f}x bytes "
        f"{ms(get_times) / ms(poll_times):8.0f}x time"
    )
    print(f"  full syncs during the watch (1 = only the first): {full_syncs}")


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with throwaway_server(tasks) as port:
        asyncio.run(measure(port, tasks))


if __name__ == "__main__":
    main()
