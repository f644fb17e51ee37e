"""`make bench`: the how-to's raw ssh commands and ecflow-remote side by side against one fresh simulated Centre."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecflow_remote.tunnel.state import TunnelState

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PAYLOAD = 50 * 1024 * 1024
HOLD = "exec sleep 2147483647"

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
            return Target("logserver1", 9316, t.address)
        return Target(*t.endpoint("logserver1", 9316))

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


# ------------------------------------------------------------------------------------------ the steps


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


def measure_steady(cfgs: list[Config], files: dict[str, Path], n_ping: int, n_log: int, rounds: int = 4) -> None:
    """Every config up at once, measured in interleaved rounds: other load on the machine hits all alike."""
    for cfg in cfgs:
        t0 = time.perf_counter()
        cfg.start()
        cfg.results["ready_s"] = time.perf_counter() - t0
    samples: dict[str, dict[str, list[float]]] = {c.key: {} for c in cfgs}
    for _ in range(rounds):
        for cfg in cfgs:
            got = samples[cfg.key]
            target = cfg.log()
            target.request("version")  # the first connection through a proxy pays one-off costs
            got.setdefault("log", []).extend(timed(functools.partial(target.request, "version"), n_log // rounds))
            ping = cfg.ping()
            if ping:
                got.setdefault("ping", []).extend(ping_times(*ping, n_ping // rounds))
            for kind, path in files.items():
                got.setdefault(f"mbps_{kind}", []).append(throughput(target, path))
    for cfg in cfgs:
        for name, xs in samples[cfg.key].items():
            cfg.results[name] = statistics.median(xs) if name.startswith("mbps") else summary(xs)


def measure_kill(cfg: Config, limit: float) -> None:
    """kill -9 of the ssh that carries the forwards; how long until the service is back (None: never)."""
    pid = cfg.ssh_pid()
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.01)
    cfg.results["after_kill_s"] = time_to_service(cfg.log(), cfg.ping(), limit)


def measure_link_cut(centre: Any, cfgs: list[Config], cut: float, limit: float) -> None:
    """One 20 s link cut for every config at once; then, in parallel, each one's time to service."""
    centre.cut_link()
    t_cut = time.monotonic()
    detected: dict[str, float] = {}

    def watch(cfg: Config) -> None:
        # ecflow-remote's supervisor says when it notices the dead link (keepalives): state "reconnecting".
        if cfg.state() is None:
            return
        while time.monotonic() - t_cut < cut:
            if (s := cfg.state()) is None or s.state != "up":
                detected[cfg.key] = time.monotonic() - t_cut
                return
            time.sleep(0.05)

    watchers = [threading.Thread(target=watch, args=(c,)) for c in cfgs]
    for w in watchers:
        w.start()
    time.sleep(cut)
    centre.restore_link()
    for w in watchers:
        w.join()
    out: dict[str, float | None] = {}

    def probe(cfg: Config) -> None:
        out[cfg.key] = time_to_service(cfg.log(), cfg.ping(), limit)

    probes = [threading.Thread(target=probe, args=(c,)) for c in cfgs]
    for p in probes:
        p.start()
    for p in probes:
        p.join()
    for cfg in cfgs:
        cfg.results["after_link_s"] = out.get(cfg.key)
        if cfg.key in detected:
            cfg.results["link_detected_s"] = detected[cfg.key]


def stall_matrix(centre: Any, workdir: Path, n: int) -> dict[str, dict[str, float]]:
    """Which leg needs the pty session: a log-server request through one -L forward, per leg configuration."""
    from centre.howto import free_port, wait_listening

    base = ["ssh", "-F", str(centre.ssh_config), "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
    ctl = workdir / "m.sock"
    master = [*base, "-M", "-S", str(ctl), "-o", "ControlPersist=no", "-tt", centre.jump, HOLD]
    via_master = ["-o", f"ProxyCommand=ssh -F {centre.ssh_config} -S {ctl} -W %h:%p {centre.jump}"]
    variants = {
        "no session (raw how-to)": (None, [*base, "-J", centre.jump], False),
        "session on workstation leg only": (None, [*base, "-J", centre.jump], True),
        "session on jump leg only": (master, [*base, *via_master], False),
        "session on both legs (ecflow-remote)": (master, [*base, *via_master], True),
    }
    results = {}
    for name, (master_argv, main, session) in variants.items():
        procs: list[subprocess.Popen[bytes]] = []
        try:
            if master_argv:
                procs.append(_spawn(master_argv))
                deadline = time.monotonic() + 10
                while not ctl.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            port = free_port()
            tail = ["-tt", centre.workstation, HOLD] if session else ["-N", centre.workstation]
            procs.append(_spawn([*main, "-L", f"127.0.0.1:{port}:logserver1:9316", *tail]))
            wait_listening(port, procs[-1])
            target = Target("127.0.0.1", port)
            target.request("version")
            results[name] = summary(timed(lambda t=target: t.request("version"), n))  # type: ignore[misc]
        finally:
            for p in reversed(procs):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            with contextlib.suppress(OSError):
                ctl.unlink()
    return results


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    # stdin is a pipe held open: a -tt session sees no EOF.
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def status_bench(centre: Any, workdir: Path, dead: int) -> dict[str, float]:
    """`ecflow-remote status --json` with 2 live + `dead` stopped servers, against pinging each in turn by hand."""
    from centre import howto

    from ecflow_remote.tunnel.handle import Tunnel

    profile = centre.write_profile(workdir / "profile-status.toml", "local")
    extra = "".join(f'\n[[server]]\nname = "dead{i}"\nhost = "machine2"\nport = {5000 + i}\n' for i in range(dead))
    profile.write_text(profile.read_text() + extra)
    results: dict[str, float] = {}
    # These servers never answer: up without waiting for every one.
    tunnel = Tunnel(profile)
    tunnel.up(require_all=False)
    try:
        cli = Path(sys.executable).with_name("ecflow-remote")
        t0 = time.perf_counter()
        out = subprocess.run([str(cli), "--profile", str(profile), "status", "--json"], capture_output=True)
        results["ours_s"] = time.perf_counter() - t0
        report = json.loads(out.stdout)
        results["ours_reachable"] = sum(1 for s in report["servers"] if s["reachable"])
        from ecflow_remote import status as status_view

        t0 = time.perf_counter()
        status_view.report(tunnel, live=True)
        results["ours_api_s"] = time.perf_counter() - t0
    finally:
        tunnel.down()
    raw = howto.local_forward(centre)
    for i in range(dead):
        port = howto.free_port()
        raw.forwards[("machine2", 5000 + i)] = port
        raw.argv += ["-L", f"127.0.0.1:{port}:machine2:{5000 + i}"]
    with raw:
        t0 = time.perf_counter()
        ok = 0
        for (host, _port), local in raw.forwards.items():
            if host.startswith("logserver"):
                continue
            try:
                ecflow_client("127.0.0.1", local).ping()
                ok += 1
            except RuntimeError:
                pass
        results["raw_s"] = time.perf_counter() - t0
        results["raw_reachable"] = ok
    return results


# ---------------------------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in ln
            ),
            "",
        )
    distro = ""
    with contextlib.suppress(OSError):
        distro = next(
            (
                ln.split("=", 1)[1].strip().strip('"')
                for ln in Path("/etc/os-release").read_text().splitlines()
                if ln.startswith("PRETTY")
            ),
            "",
        )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "os": distro,
        "openssh": ssh_version,
        "python": platform.python_version(),
    }


def fmt(v: Any, unit: str = "", digits: int = 2) -> str:
    if v is None:
        return "never"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}{unit}"


def ratio(raw: float | None, ours: float | None, higher_better: bool = False) -> str:
    """How many times better ecflow-remote is than the best raw configuration (>1: better)."""
    if ours is None:
        return "—"
    if raw is None:
        return "∞" if not higher_better else "—"
    if higher_better:
        return f"{ours / raw:.2f}×"
    return f"{raw / ours:.1f}×" if ours > 0 else "∞"


def table(cfgs: list[Config], status: dict[str, float], stall: dict[str, dict[str, float]], m: dict[str, str]) -> str:
    def get(cfg: Config, *path: str) -> Any:
        v: Any = cfg.results
        for p in path:
            if not isinstance(v, dict) or p not in v:
                return "—"
            v = v[p]
        return v

    rows: list[tuple[str, tuple[str, ...], str, int, bool, float]] = [
        ("ecFlow ping median (200×)", ("ping", "median_ms"), " ms", 2, False, 1),
        ("ecFlow ping p99", ("ping", "p99_ms"), " ms", 2, False, 1),
        ("log-server `version`, new connection, median (200×)", ("log", "median_ms"), " ms", 2, False, 1),
        ("log-server `version` p99", ("log", "p99_ms"), " ms", 2, False, 1),
        ("50 MB job output, text (compressible)", ("mbps_compressible",), " MB/s", 0, True, 1),
        ("50 MB job output, random bytes", ("mbps_random",), " MB/s", 0, True, 1),
        ("start to all servers ready", ("ready_s",), " s", 2, False, 1),
        ("service back after `kill -9` of ssh", ("after_kill_s",), " s", 2, False, 1),
        ("service back after a 20 s link cut (from restore)", ("after_link_s",), " s", 2, False, 1),
        ("dead link noticed (from cut)", ("link_detected_s",), " s", 1, False, 1),
    ]
    raws = [c for c in cfgs if not c.key.startswith("ours-")]
    ours = [c for c in cfgs if c.key.startswith("ours-")]
    head = "| measure | " + " | ".join(c.title for c in cfgs) + " | best raw → best ecflow-remote |"
    lines = [head, "|" + "---|" * (len(cfgs) + 2)]
    for label, path, unit, digits, higher, _ in rows:
        cells = [fmt(get(c, *path), unit, digits) for c in cfgs]

        def num(c: Config, p: tuple[str, ...] = path) -> float | None:
            v = get(c, *p)
            return v if isinstance(v, (int, float)) else None

        def best(
            cs: list[Config],
            higher: bool = higher,
            num: Callable[[Config], float | None] = num,
            path_: tuple[str, ...] = path,
        ) -> Any:
            vals = [num(c) for c in cs]
            present = [v for v in vals if v is not None]
            if not present:
                # Every one says "never" (None) or has no such measure ("—").
                return None if any(get(c, *path_) is None for c in cs) else "—"
            return max(present) if higher else min(present)

        b_raw, b_ours = best(raws), best(ours)
        r = "—" if "—" in (b_raw, b_ours) else ratio(b_raw, b_ours, higher)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {r} |")
    n_dead = int(status.get("dead", 20))
    lines.append(
        f"| `status` of 2 live + {n_dead} dead servers | {fmt(status.get('raw_s'), ' s')} (22 pings in turn) | | "
        f"| {fmt(status.get('ours_s'), ' s')} (CLI; {fmt(status.get('ours_api_s'), ' s')} in-process) | | "
        f"{ratio(status.get('raw_s'), status.get('ours_s'))} |"
    )
    out = ["## ecflow-remote vs the how-to's raw OpenSSH commands", "", *lines, ""]
    out += [
        "Ratios: how many times faster (times, latencies) or the throughput fraction, best raw configuration "
        "against the best ecflow-remote method; “never”: not without the user restarting ssh by hand.",
        "",
        "### Which SSH leg needs a pty session (log-server `version` through one `-L` forward)",
        "",
        "| legs | median | p99 |",
        "|---|---|---|",
    ]
    out += [f"| {k} | {v['median_ms']:.2f} ms | {v['p99_ms']:.2f} ms |" for k, v in stall.items()]
    out += [
        "",
        f"Machine: {m['os']}, {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, {m['openssh']}, "
        f"Python {m['python']}; the simulated Centre (network namespaces on the same machine).",
    ]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer samples, a 10 s link cut (a smoke run)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("bench: needs Linux and root (the simulated Centre uses network namespaces)", file=sys.stderr)
        return 2
    from centre.isolation import isolate_resolver, private_runtime

    # Before any thread: the Centre's host names must never reach the machine's own resolver.
    isolate_resolver()
    from centre import Centre, cleanup_stale, howto

    cleanup_stale()
    n_ping, n_log, cut = (50, 50, 10.0) if args.quick else (200, 200, 20.0)
    started = time.time()
    m = machine()
    with private_runtime() as work, Centre() as centre:
        print(f"bench: Centre {centre.run_id} up; writing 2 × 50 MB payloads", flush=True)
        files = payloads(centre)
        cfgs = [
            raw_config(centre, "raw-L", "raw `ssh -J -L`", lambda: howto.local_forward(centre)),
            raw_config(centre, "raw-LC", "raw `ssh -J -L -C`", lambda: howto.local_forward(centre, True)),
            raw_config(centre, "raw-D", "raw `ssh -J -D`", lambda: howto.socks_proxy(centre)),
            ours_config(centre, "local", work),
            ours_config(centre, "socks", work),
        ]
        try:
            print("bench: latency and throughput, every configuration in interleaved rounds", flush=True)
            measure_steady(cfgs, files, n_ping, n_log)
            print(f"bench: link cut of {cut:.0f} s, all at once", flush=True)
            measure_link_cut(centre, cfgs, cut, limit=30.0)
            for cfg in cfgs:
                print(f"bench: {cfg.title}: kill -9 of ssh", flush=True)
                measure_kill(cfg, limit=5.0 if not cfg.key.startswith("ours-") else 15.0)
        finally:
            centre.restore_link()
            for cfg in cfgs:
                with contextlib.suppress(Exception):
                    cfg.stop()
        print("bench: which leg needs a session", flush=True)
        stall = stall_matrix(centre, work, n_log)
        print("bench: status with 2 live + 20 dead servers", flush=True)
        status = status_bench(centre, work, 20)
        status["dead"] = 20
    text = table(cfgs, status, stall, m)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = {
        "machine": m,
        "started": started,
        "duration_s": time.time() - started,
        "configs": {c.key: {"title": c.title, **c.results} for c in cfgs},
        "status": status,
        "stall": stall,
    }
    save("bench", stamp, data, text, started)
    return 0


def save(prefix: str, stamp: str, data: dict[str, Any], text: str, started: float) -> None:
    """Results to bench/results/ (json and the markdown table), then the table to stdout."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{prefix}-{stamp}.json").write_text(json.dumps(data, indent=1))
    (RESULTS / f"{prefix}-{stamp}.md").write_text(text + "\n")
    print()
    print(text)
    print(f"\n(results: {RESULTS}/{prefix}-{stamp}.{{json,md}}, {time.time() - started:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
