"""Benchmarks of the native clients through the tunnel: ping vs python3-ecflow, status with dead servers, output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from measures import timed

PING_ROUNDS = 300
DEAD_SERVERS = 20
STATUS_TIMEOUT = 2.0
OUTPUT_MB = 50


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p99_ms": _percentile(samples, 0.99) * 1000,
        "n": len(samples),
    }


def measure_ping(host: str, port: int, rounds: int = PING_ROUNDS) -> dict[str, Any]:
    """Ping the same endpoint with the native client (sync API, and many pings in one event loop) and with
    python3-ecflow's Client.ping, interleaved in blocks so that drift hits all of them alike."""
    import ecflow

    from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient

    native = EcflowClient(host, port)
    reference = ecflow.Client(host, str(port))
    async_client = AsyncEcflowClient(host, port)
    results: dict[str, list[float]] = {"native (sync)": [], "native (async loop)": [], "python3-ecflow": []}

    async def async_block(n: int) -> list[float]:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            await async_client.ping()
            samples.append(time.perf_counter() - t0)
        return samples

    block = 25
    for _ in range(max(1, rounds // block)):
        results["native (sync)"] += timed(native.ping, block)
        results["python3-ecflow"] += timed(reference.ping, block)
        results["native (async loop)"] += asyncio.run(async_block(block))
    summary = {name: _summary(samples) for name, samples in results.items()}
    ref = summary["python3-ecflow"]["median_ms"]
    for data in summary.values():
        data["ratio_to_python3_ecflow"] = data["median_ms"] / ref
    return summary


def measure_status(profile: Path, timeout: float = STATUS_TIMEOUT) -> dict[str, Any]:
    """`ecflow-remote status --json` (a new process, as a user runs it) and the concurrent check alone."""
    import json

    from ecflow_remote.tunnel.handle import Tunnel

    cli = str(Path(sys.executable).parent / "ecflow-remote")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [cli, "--profile", str(profile), "status", "--json", "--timeout", str(timeout)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    command_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"status failed: {proc.stderr}")
    report = json.loads(proc.stdout)
    t0 = time.perf_counter()
    Tunnel(profile).check(timeout)
    check_s = time.perf_counter() - t0
    servers = report["servers"]
    return {
        "servers": len(servers),
        "reachable": sum(1 for s in servers if s["reachable"]),
        "timeout_s": timeout,
        "status_command_s": command_s,
        "check_only_s": check_s,
        "ratio_to_timeout": command_s / timeout,
        # One line per kind of failure: the port numbers would make each one distinct.
        "errors": sorted({re.sub(r"\d+", "N", s["error"] or "")[:90] for s in servers if not s["reachable"]}),
    }


def _raw_get(host: str, port: int, path: str, proxy: tuple[str, int] | None, proxy_auth: tuple[str, str] | None) -> int:
    if proxy is not None:
        from python_socks import ProxyType
        from python_socks.sync import Proxy

        user, password = proxy_auth or (None, None)
        sock = Proxy(ProxyType.SOCKS5, proxy[0], proxy[1], username=user, password=password, rdns=True).connect(
            host, port, timeout=10
        )
    else:
        sock = socket.create_connection((host, port), timeout=10)
    with sock:
        sock.sendall(f"get {path}\n".encode())
        buf = bytearray(1024 * 1024)
        view = memoryview(buf)
        total = 0
        while n := sock.recv_into(view):
            total += n
    return total


def measure_output(
    host: str,
    port: int,
    path: str,
    size: int,
    proxy: tuple[str, int] | None = None,
    repeats: int = 3,
    proxy_auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The native log-server read (list + getf, verified, into memory) vs a plain socket `get` of the same file."""
    from ecflow_remote.clients.logserver import LogServerClient

    client = LogServerClient(host, port, proxy=proxy, proxy_auth=proxy_auth, read_timeout=60)
    native: list[float] = []
    raw: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = client.read(path)
        native.append(time.perf_counter() - t0)
        if got.size != size:
            raise RuntimeError(f"native read got {got.size} of {size} bytes")
        del got
        t0 = time.perf_counter()
        n = _raw_get(host, port, path, proxy, proxy_auth)
        raw.append(time.perf_counter() - t0)
        if n != size:
            raise RuntimeError(f"plain socket read got {n} of {size} bytes")
    mb = size / 1e6
    native_mbs, raw_mbs = mb / min(native), mb / min(raw)
    return {"size_mb": mb, "native_MBps": native_mbs, "socket_MBps": raw_mbs, "ratio": native_mbs / raw_mbs}


@contextlib.contextmanager
def running_tunnel(profile: Path, wait_all: bool = True) -> Iterator[Any]:
    """A tunnel for `profile`; wait_all=False starts the supervisor without waiting for every server to answer."""
    from ecflow_remote.tunnel.handle import Tunnel

    tunnel = Tunnel(profile)
    try:
        if wait_all:
            tunnel.up()
        else:
            # Tunnel.up insists that every server answers; a profile full of dead servers never would.
            argv = [
                sys.executable,
                "-m",
                "ecflow_remote.tunnel.handle",
                str(profile),
                tunnel.profile.gateway.method,
            ]
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 60
            while (s := tunnel.state()) is None or s.state != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError("tunnel with dead servers did not come up")
                time.sleep(0.05)
        yield tunnel
    finally:
        tunnel.down()


def dead_servers_profile(centre: Any, path: Path, count: int = DEAD_SERVERS) -> Path:
    """The Centre's profile plus `count` servers that do not answer: closed ports on a real host, names that do
    not resolve at the Centre, and silent addresses on the Centre LAN (these cost the full timeout)."""
    centre.write_profile(path, "local")
    lan = centre.topology.lan_net.rsplit(".", 1)[0] if centre.topology else "10.0.0"
    extra = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            host, port = "machine2", 5000 + i
        elif kind == 1:
            host, port = f"ghost{i}", 4000 + i
        else:
            host, port = f"{lan}.{200 + i}", 4000 + i
        extra += ["", "[[server]]", f'name = "dead{i}"', f'host = "{host}"', f"port = {port}"]
    text = path.read_text()
    head, sep, tail = text.partition("\n[[logserver]]")
    path.write_text(head + "\n".join(extra) + "\n" + sep + tail)
    return path


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def run_all(centre: Any, workdir: Path) -> dict[str, Any]:
    """Every measurement against a running Centre; returns the numbers (bench/run.py imports this)."""

    results: dict[str, Any] = {}
    spec = centre.server("machine1")
    for method in ("local", "socks"):
        profile = centre.write_profile(workdir / f"bench-{method}.toml", method)
        with running_tunnel(profile) as tunnel:
            plan = tunnel.plan()
            route = plan.route(plan.endpoint("machine1"))
            host, port = route.host, route.port
            if method == "local":
                results["ping"] = measure_ping(host, port)
            big = centre.outputs_dir / spec.suite / "bench-big.1"
            size = OUTPUT_MB * 1000 * 1000
            with open(big, "wb") as f:
                chunk = os.urandom(1000) * 1000
                for _ in range(OUTPUT_MB):
                    f.write(chunk)
            try:
                lg = next(e for e in plan.logservers() if e.host == spec.logserver)
                r = plan.route(lg)
                results[f"output_{method}"] = measure_output(
                    r.host, r.port, str(big), size, r.proxy, proxy_auth=r.proxy_auth
                )
            finally:
                big.unlink(missing_ok=True)
    dead = dead_servers_profile(centre, workdir / "bench-dead.toml")
    with running_tunnel(dead, wait_all=False):
        results["status"] = measure_status(dead)
    return results


def report(results: dict[str, Any]) -> None:
    ping = results["ping"]
    _print_table(
        "ping through the tunnel (local method), same endpoint, same run",
        ["client", "median ms", "p99 ms", "median vs python3-ecflow"],
        [
            [name, f"{d['median_ms']:.3f}", f"{d['p99_ms']:.3f}", f"{d['ratio_to_python3_ecflow']:.2f}x"]
            for name, d in ping.items()
        ],
    )
    st = results["status"]
    dead = st["servers"] - st["reachable"]
    _print_table(
        f"status: {st['reachable']} live + {dead} dead servers, timeout {st['timeout_s']:g}s",
        ["status command s", "checks only s", "status / timeout"],
        [[f"{st['status_command_s']:.2f}", f"{st['check_only_s']:.2f}", f"{st['ratio_to_timeout']:.2f}x"]],
    )
    for error in st["errors"]:
        print(f"    dead server error: {error}")
    rows = []
    for method in ("local", "socks"):
        o = results[f"output_{method}"]
        rows.append(
            [method, f"{o['size_mb']:.0f}", f"{o['native_MBps']:.0f}", f"{o['socket_MBps']:.0f}", f"{o['ratio']:.2f}"]
        )
    _print_table(
        "job output through the log server (best of 3)",
        ["method", "MB", "native MB/s", "plain socket MB/s", "native / socket"],
        rows,
    )


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/clients.py needs root (it builds the simulated Centre in network namespaces)")
    from centre.isolation import isolate_resolver

    isolate_resolver()
    from centre import Centre

    with tempfile.TemporaryDirectory(prefix="ecfr-bench-") as tmp:
        workdir = Path(tmp)
        runtime = workdir / "runtime"
        runtime.mkdir(mode=0o700)
        os.environ.setdefault("ECFLOW_REMOTE_RUNTIME_DIR", str(runtime))
        t0 = time.perf_counter()
        with Centre() as centre:
            results = run_all(centre, workdir)
        report(results)
        print(f"\n(bench took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
