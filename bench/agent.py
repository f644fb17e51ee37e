"""Bench of the far-side agent against `ssh -L`, over the simulated Centre's LAN: requests, pings, 50 MB outputs.

    sudo PYTHONPATH=. .venv/bin/python bench/agent.py [--quick]

Every configuration is up at once and measured in interleaved rounds. The agent runs in its own process (as the
supervisor will run it): python3-ecflow holds the GIL while it waits for a reply, so it cannot share a process
with an asyncio relay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import measures as bench  # bench/measures.py: the shared measures, configurations and payloads
from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT

LOG = ("logserver1", DEFAULT_LOGSERVER_PORT)
TARGETS = [("machine1", 4141), LOG]
HOLD = "exec sleep 2147483647"

# ------------------------------------------------------------------------------------------ the agent's process


async def serve(spec: dict[str, Any]) -> None:
    """--serve: start an agent session, one local listener per target; report the ports; run until stdin EOF."""
    from ecflow_remote.transport.agent import AgentOptions, AgentSession

    session = await AgentSession.start(spec["argv"], AgentOptions(compress=spec.get("compress", "auto")))
    ports = {}
    servers = []

    def piped(host: str, port: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        return lambda r, w: session.pipe(r, w, host, port)

    for host, port in spec["targets"]:
        server = await asyncio.start_server(piped(host, port), "127.0.0.1", 0)
        servers.append(server)
        ports[f"{host}:{port}"] = server.sockets[0].getsockname()[1]
    print(json.dumps({"ports": ports, "far_pid": session.hello["pid"]}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    Path(spec["stats"]).write_text(json.dumps(session.stats(), default=str))
    for server in servers:
        server.close()
    await session.close()


# ------------------------------------------------------------------------------------------ configurations


@dataclass
class Way:
    """One way through the gateway: its local endpoints per Centre target, and how to stop it."""

    key: str
    title: str
    endpoints: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    stop: Callable[[], object] = lambda: None
    stats_file: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)

    def log(self) -> bench.Target:
        return bench.Target(*self.endpoints[LOG])

    def ping(self) -> tuple[str, int]:
        return self.endpoints[("machine1", 4141)]


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_path(path: Path, limit: float = 15) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)


def howto_way(centre: Any) -> Way:
    from centre import howto

    tunnel = howto.local_forward(centre).start()
    return Way("howto-L", "how-to `ssh -J -L`", {k: tunnel.endpoint(*k) for k in TARGETS}, tunnel.stop)


def today_way(centre: Any, work: Path) -> Way:
    """ecflow-remote's `local` method as it is today (plain forwards on pty-holding legs): the LAN baseline."""
    cfg = bench.ours_config(centre, "local", work)
    cfg.start()
    log = cfg.log()
    ping = cfg.ping()
    assert ping is not None
    return Way("today", "ecflow-remote local today", {LOG: (log.host, log.port), TARGETS[0]: ping}, cfg.stop)


def agent_way(centre: Any, work: Path, key: str, title: str, masters: bool, compress: str = "auto") -> Way:
    """The agent over plain `ssh -J -T`, or (masters) as the second session of pty-holding ControlMasters on
    both legs, as the tunnel will run it (the first session's pty makes OpenSSH turn Nagle off)."""
    from ecflow_remote.transport.agent import control_session_argv

    base = ["ssh", "-F", str(centre.ssh_config), "-o", "BatchMode=yes"]
    procs: list[subprocess.Popen[bytes]] = []
    if masters:
        jump_ctl, main_ctl = work / f"{key}-j.sock", work / f"{key}-m.sock"
        procs.append(_spawn([*base, "-M", "-S", str(jump_ctl), "-o", "ControlPersist=no", "-tt", centre.jump, HOLD]))
        _wait_path(jump_ctl)
        via = f"ProxyCommand=ssh -F {centre.ssh_config} -S {jump_ctl} -W %h:%p {centre.jump}"
        main = [*base, "-o", via, "-M", "-S", str(main_ctl), "-o", "ControlPersist=no", "-tt", centre.workstation, HOLD]
        procs.append(_spawn(main))
        _wait_path(main_ctl)
        argv = control_session_argv("ssh", main_ctl, centre.workstation, ["-F", str(centre.ssh_config)])
    else:
        argv = [*base, "-J", centre.jump, "-T", centre.workstation]
    stats = work / f"{key}-stats.json"
    spec = {"argv": argv, "targets": TARGETS, "compress": compress, "stats": str(stats)}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert server.stdout and server.stdin
    line = server.stdout.readline()
    if not line:
        raise RuntimeError(f"{title}: the agent did not start")
    ports = json.loads(line)["ports"]
    procs.append(server)

    def stop() -> None:
        with contextlib.suppress(OSError):
            assert server.stdin
            server.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        for proc in reversed(procs):
            _kill(proc)

    endpoints = {(h, p): ("127.0.0.1", ports[f"{h}:{p}"]) for h, p in TARGETS}
    return Way(key, title, endpoints, stop, stats)


# ------------------------------------------------------------------------------------------ measuring


def ping_during_transfer(way: Way, path: Path, n: int) -> list[float]:
    """ecFlow pings while a 50 MB output streams on the same tunnel (a small request behind a big one)."""
    done = threading.Event()

    def transfer() -> None:
        try:
            bench.throughput(way.log(), path)
        finally:
            done.set()

    thread = threading.Thread(target=transfer)
    thread.start()
    client = bench.ecflow_client(*way.ping())
    times: list[float] = []
    time.sleep(0.05)
    while not done.is_set() and len(times) < n:
        t0 = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - t0)
    thread.join()
    return times


def measure(ways: list[Way], files: dict[str, Path], n: int, rounds: int) -> None:
    samples: dict[str, dict[str, list[float]]] = {w.key: {} for w in ways}
    for _ in range(rounds):
        for way in ways:
            got = samples[way.key]
            target = way.log()
            target.request("version")
            got.setdefault("log", []).extend(bench.timed(partial(target.request, "version"), n // rounds))
            got.setdefault("ping", []).extend(bench.ping_times(*way.ping(), n // rounds))
            for kind, path in files.items():
                got.setdefault(f"mbps_{kind}", []).append(bench.throughput(target, path))
            got.setdefault("ping_busy", []).extend(ping_during_transfer(way, files["random"], n // rounds))
    for way in ways:
        for name, xs in samples[way.key].items():
            way.results[name] = statistics.median(xs) if name.startswith("mbps") else bench.summary(xs)


def table(ways: list[Way]) -> str:
    base = ways[0].results
    rows = [
        ("log-server request, new connection (ms)", "log", False),
        ("ecFlow ping, new connection (ms)", "ping", False),
        ("ecFlow ping while 50 MB stream (ms)", "ping_busy", False),
        ("50 MB text (MB/s)", "mbps_compressible", True),
        ("50 MB random (MB/s)", "mbps_random", True),
    ]
    head = "| | " + " | ".join(w.title for w in ways) + " |"
    out = [head, "|---" * (len(ways) + 1) + "|"]
    for label, key, rate in rows:
        cells = []
        for way in ways:
            r = way.results.get(key)
            if r is None:
                cells.append("–")
                continue
            if rate:
                ratio = r / base[key]
                cells.append(f"{r:.0f} ({ratio:.2f}× speed)")
            else:
                ratio = r["median_ms"] / base[key]["median_ms"]
                cells.append(f"{r['median_ms']:.2f} / p99 {r['p99_ms']:.2f} ({ratio:.2f}× time)")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer samples")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(json.loads(args.serve)))
        return 0
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("bench: needs Linux and root (the simulated Centre uses network namespaces)", file=sys.stderr)
        return 2
    from centre.isolation import isolate_resolver, private_runtime

    isolate_resolver()  # before any thread: Centre names never reach the machine's resolver
    from centre import Centre, cleanup_stale

    cleanup_stale()
    n, rounds = (40, 2) if args.quick else (200, 4)
    with private_runtime() as work, Centre() as centre:
        print(f"bench: Centre {centre.run_id} up; writing 2 × 50 MB payloads", flush=True)
        files = bench.payloads(centre)
        ways: list[Way] = []
        try:
            ways.append(howto_way(centre))
            ways.append(today_way(centre, work))
            ways.append(agent_way(centre, work, "agent-T", "agent, plain `ssh -J -T`", masters=False))
            ways.append(agent_way(centre, work, "agent-M", "agent, beside pty masters", masters=True))
            ways.append(agent_way(centre, work, "agent-M0", "same, compression off", masters=True, compress="never"))
            print("bench: interleaved rounds", flush=True)
            measure(ways, files, n, rounds)
        finally:
            for way in ways:
                with contextlib.suppress(Exception):
                    way.stop()
    print()
    print(table(ways))
    for way in ways:
        if way.stats_file and way.stats_file.exists():
            s = json.loads(way.stats_file.read_text())
            print(f"{way.title}: raw in {s['raw_in'] / 1e6:.0f} MB, on the wire {s['wire_in'] / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
