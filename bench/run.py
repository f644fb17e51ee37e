"""`make bench`: the how-to's raw ssh commands and ecflow-remote side by side against one fresh simulated Centre."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from measures import (
    Config,
    Target,
    ecflow_client,
    ours_config,
    payloads,
    ping_times,
    raw_config,
    summary,
    throughput,
    time_to_service,
    timed,
)
from report import machine, save, table

HOLD = "exec sleep 2147483647"

# ------------------------------------------------------------------------------------------ the steps


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


if __name__ == "__main__":
    sys.exit(main())
