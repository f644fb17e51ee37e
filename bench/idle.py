"""`python bench/idle.py`: what a tunnel costs while nothing uses it, beside the how-to's raw `ssh -N -L`.

All run at once against one fresh simulated Centre (two ecFlow servers, two log servers, a LAN): ecflow-remote
with plain OpenSSH forwards (gateway.transport = "plain"), the raw command, and the raw command with ecflow-remote's
keepalives (their share). After a settling time (its first
health round and log-server search), each process tree is sampled from /proc for --seconds: CPU seconds per idle
minute (user + system, the whole tree: supervisor, finder, ssh legs, and what they reaped) and wakeups per second
(voluntary + involuntary context switches of every thread). Linux and root (network namespaces).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

SETTLE = 15.0  # seconds: `up`'s first health round and the finder's first round are start-up, not idling


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to sample the idle tunnels (default 60)")
    ap.add_argument("--each", action="store_true", help="also each process's share")
    ap.add_argument("--transport", default="plain", help="ecflow-remote's gateway.transport (default plain)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("bench: needs Linux and root (the simulated Centre uses network namespaces)", file=sys.stderr)
        return 2
    from centre.isolation import isolate_resolver, private_runtime

    isolate_resolver()  # before any thread: the Centre's names never reach the machine's resolver
    from centre import Centre, cleanup_stale, costs, howto

    from ecflow_remote.transport.ssh import KEEPALIVE
    from ecflow_remote.tunnel.handle import Tunnel

    cleanup_stale()
    with private_runtime() as work, Centre() as centre, howto.local_forward(centre) as raw:
        # The same command with ecflow-remote's keepalives (transport/ssh.py): their share of the cost.
        alive = howto.local_forward(centre)
        alive.argv += KEEPALIVE
        alive.log = None
        alive.start()
        profile = centre.write_profile(Path(work) / "profile-idle.toml", "local", transport=args.transport)
        tunnel = Tunnel(profile)
        tunnel.up()
        try:
            state = tunnel.state()
            assert state is not None and raw.proc is not None and alive.proc is not None
            roots = {
                "raw `ssh -J -N -L`": [raw.proc.pid],
                "raw, with keepalives every 3 s": [alive.proc.pid],
                f"ecflow-remote (transport {args.transport})": [state.supervisor_pid],
            }
            print(f"bench: Centre {centre.run_id}; the tunnels up; settling {SETTLE:.0f} s", flush=True)
            time.sleep(SETTLE)
            first = {name: costs.sample(pids) for name, pids in roots.items()}
            # The supervisor's threads apart: its loop thread also wakes at each of the system's network changes
            # (the network watch), which a machine running other network namespaces has many of.
            t0, first_threads = time.monotonic(), costs.threads(state.supervisor_pid)
            print(f"bench: sampling {args.seconds:.0f} s of idling", flush=True)
            time.sleep(args.seconds)
            last = {name: costs.sample(pids) for name, pids in roots.items()}
            last_threads, sampled = costs.threads(state.supervisor_pid), time.monotonic() - t0
            names = {pid: costs.name(pid) for s in last.values() for pid in s.pids}
        finally:
            tunnel.down()
            alive.stop()
    print()
    print("| tunnel | processes | CPU s per idle minute | CPU s per idle hour | wakeups per second |")
    print("|---|---|---|---|---|")
    for name in roots:
        cost = costs.between(first[name], last[name])
        print(
            f"| {name} | {len(last[name].pids)} | {cost.cpu_per_minute:.3f} | {cost.cpu_per_hour:.1f} | "
            f"{cost.wakeups_per_second:.1f} |"
        )
    if args.each:
        print()
        for name in roots:
            for pid, cost in costs.each_between(first[name], last[name]).items():
                print(f"  {pid:>7} {cost.cpu_per_minute:7.3f} s/min {cost.wakeups_per_second:6.1f}/s  {names[pid]}")
        print()
        for tid, (cpu, switches) in last_threads.items():
            was_cpu, was_switches = first_threads.get(tid, (None, 0))
            if cpu is None or was_cpu is None:
                continue
            per_minute, rate = (cpu - was_cpu) / sampled * 60, (switches - was_switches) / sampled
            main = "main thread" if tid == state.supervisor_pid else "thread"
            print(f"  supervisor {main} {tid}: {per_minute:.3f} s/min {rate:.1f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
