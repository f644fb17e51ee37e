"""The LAN bench's measures (ecFlow ping, log-server requests, job-output throughput, time until a service answers)
and what they run against: the how-to's raw ssh commands and ecflow-remote's tunnel, each as a Config; the payloads.
bench/run.py runs them; agent.py and homelink.py use them too."""

from __future__ import annotations

import os
import socket
import statistics
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT

if TYPE_CHECKING:
    from ecflow_remote.tunnel.state import TunnelState

PAYLOAD = 50 * 1024 * 1024

# --------------------------------------------------------------------------------------------- measuring


def socks_connect(
    proxy: tuple[str, int], host: str, port: int, timeout: float = 5.0, auth: tuple[str, str] | None = None
) -> socket.socket:
    """A minimal SOCKS5 CONNECT (name resolved at the far end; user/password when the proxy wants them, as
    ecflow-remote's front does): as little client overhead as possible, the same for raw ssh -D and for us."""
    s = socket.create_connection(proxy, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"\x05\x01\x02" if auth else b"\x05\x01\x00")
    if s.recv(2) != (b"\x05\x02" if auth else b"\x05\x00"):
        s.close()
        raise ConnectionError("SOCKS5 proxy refused the authentication method")
    if auth:
        user, password = (part.encode() for part in auth)
        s.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        if s.recv(2) != b"\x01\x00":
            s.close()
            raise ConnectionError("SOCKS5 proxy refused the credentials")
    name = host.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port))
    reply = s.recv(10)
    if len(reply) < 2 or reply[1] != 0:
        s.close()
        raise ConnectionError(f"SOCKS5 CONNECT {host}:{port} failed: {reply!r}")
    return s


@dataclass
class Target:
    """Where a log server is reached: a local forward, or its Centre name through a SOCKS proxy."""

    host: str
    port: int
    proxy: tuple[str, int] | None = None
    auth: tuple[str, str] | None = None

    def connect(self, timeout: float = 5.0) -> socket.socket:
        if self.proxy:
            return socks_connect(self.proxy, self.host, self.port, timeout, self.auth)
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def request(self, line: str, timeout: float = 5.0) -> bytes:
        """One log-server request on a new connection, as ecflow_ui makes them; the whole reply."""
        with self.connect(timeout) as s:
            s.settimeout(timeout)
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks)


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(xs) * 1000, "p99_ms": pct(xs, 0.99) * 1000, "n": len(xs)}


def ecflow_client(host: str, port: int) -> Any:
    import ecflow  # python3-ecflow: the real client, as users' scripts use it

    c = ecflow.Client(host, port)
    # A failure must fail now (the recovery probes), not after ecflow's own retries.
    c.set_connection_attempts(1)
    c.set_retry_connection_period(0)
    return c


def ping_times(host: str, port: int, n: int) -> list[float]:
    c = ecflow_client(host, port)
    return timed(c.ping, n)


def throughput(target: Target, path: Path) -> float:
    """MB/s of one `get` of a whole file; checks every byte arrived."""
    t0 = time.perf_counter()
    data = target.request(f"get {path}", timeout=60)
    dt = time.perf_counter() - t0
    if len(data) != path.stat().st_size:
        raise RuntimeError(f"get {path}: {len(data)} bytes, expected {path.stat().st_size}")
    return len(data) / dt / 1e6


def serves(target: Target, ping: tuple[str, int] | None) -> bool:
    """Does the tunnel serve right now: a log-server `version` and (where there is one) an ecFlow ping."""
    try:
        if not target.request("version", timeout=1.0).strip():
            return False
        if ping:
            ecflow_client(*ping).ping()
    except Exception:
        return False
    return True


def time_to_service(target: Target, ping: tuple[str, int] | None, limit: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if serves(target, ping):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


# ------------------------------------------------------------------------------------------ the configs


@dataclass
class Config:
    """One way through the gateway: how to start it, where its services are, how to kill its ssh."""

    key: str
    title: str
    start: Callable[[], object]
    stop: Callable[[], object]
    log: Callable[[], Target]
    ping: Callable[[], tuple[str, int] | None]
    ssh_pid: Callable[[], int | None]
    # ecflow-remote only: the supervisor's state.json (its own word on when it noticed a dead link).
    state: Callable[[], TunnelState | None] = lambda: None
    results: dict[str, Any] = field(default_factory=dict)


def raw_config(centre: Any, key: str, title: str, make: Callable[[], Any]) -> Config:
    box: dict[str, Any] = {}

    def start() -> None:
        tunnel = box["t"] = make()
        tunnel.start()
        if tunnel.forwards:
            ecflow_client(*tunnel.endpoint("machine1", 4141)).ping()
            ecflow_client(*tunnel.endpoint("machine2", 3142)).ping()

    def log() -> Target:
        t = box["t"]
        if t.socks_port:
            return Target("logserver1", DEFAULT_LOGSERVER_PORT, t.address)
        return Target(*t.endpoint("logserver1", DEFAULT_LOGSERVER_PORT))

    def ping() -> tuple[str, int] | None:
        t = box["t"]
        # ecFlow's Boost.Asio clients cannot use a SOCKS proxy on Linux: the how-to's Method 2 has no ping.
        return None if t.socks_port else t.endpoint("machine1", 4141)

    return Config(
        key,
        title,
        start,
        lambda: box["t"].stop() if "t" in box else None,
        log,
        ping,
        lambda: box["t"].proc.pid if "t" in box and box["t"].proc else None,
    )


def ours_config(centre: Any, method: str, workdir: Path, transport: str = "auto") -> Config:
    """`transport`: the profile's gateway.transport (auto: on this LAN ssh's own channels, the agent only over a
    slow link; plain: OpenSSH's forwards always)."""
    from ecflow_remote.net import free_port
    from ecflow_remote.tunnel.handle import Tunnel

    # A free SOCKS port: 9050 may be held by another tunnel on this machine.
    extra: dict[str, Any] = {"socks_port": free_port()} if method == "socks" else {}
    extra["transport"] = transport
    suffix = "" if transport == "auto" else f"-{transport}"
    profile = centre.write_profile(workdir / f"profile-{method}{suffix}.toml", method, **extra)
    tunnel = Tunnel(profile)

    def log() -> Target:
        plan = tunnel.plan()
        e = next(e for e in plan.logservers() if e.host == "logserver1")
        if e.forwarded:
            return Target(e.local_host, e.local_port)
        assert plan.socks_port
        return Target(e.host, e.port, ("127.0.0.1", plan.socks_port), plan.proxy_auth)

    def pid() -> int | None:
        state = tunnel.state()
        return state.pid if state else None

    return Config(
        f"ours-{method}{suffix}",
        f"ecflow-remote {method}" + (f", {transport} forwards" if transport != "auto" else ""),
        lambda: tunnel.up(),
        lambda: tunnel.down(),
        log,
        lambda: tunnel.endpoint("machine1"),
        pid,
        lambda: tunnel.rundir.read_state(),
    )


def payloads(centre: Any, size: int = PAYLOAD) -> dict[str, Path]:
    """Two job outputs of `size` bytes in the log servers' LOGPATH: text that compresses, and random bytes."""
    d = centre.outputs_dir / "bench"
    d.mkdir(mode=0o755, exist_ok=True)
    text = d / f"compressible-{size}.1"
    line = b"MSG:[12:00:00 1.1.2025] chd:complete /lab/f1/hello: ECF_TRYNO=1 some job output text here\n"
    text.write_bytes((line * (size // len(line) + 1))[:size])
    rand = d / f"random-{size}.1"
    rand.write_bytes(os.urandom(size))
    for p in (d, text, rand):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return {"compressible": text, "random": rand}
