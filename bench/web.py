"""`ecflow-remote web` timings in a real browser: first paint of a 10 000-task suite (100 000 with --families 1000),
how long a state change on the server takes to show on the page, and the memory of the page and its server.

A fresh simulated Centre gets a suite of N families × 100 tasks on machine1 (begun suspended: no job runs); the
tunnel is brought up (local method), `ecflow-remote web --no-open` started as a user would, and Debian's chromium
(headless, driven by playwright) opens it. Each state change is an `ecflow_client --force` run at the Centre; the
time is taken until the row's state changes on the page (wait_for_selector, observed in the page).
Run (Linux, root): .venv/bin/python bench/web.py [--rounds N] [--families N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PER_FAMILY = 100
FIRST_PAINT_TARGET = 1.0
LIVE_TARGET = 2.0


def suite_text(families: int) -> str:
    lines = ["suite big", "  defstatus suspended"]
    for f in range(families):
        lines.append(f"  family f{f}")
        lines += [f"    task t{t}" for t in range(PER_FAMILY)]
        lines.append("  endfamily")
    return "\n".join([*lines, "endsuite", ""])


def stats(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


def rss_mb(pid: int) -> float:
    """A process's resident memory (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(centre: Any, url: str, rounds: int, tasks: int, server_pid: int) -> None:
    from centre.webshot import browser

    port = centre.server("machine1").port
    print("web: live updates by the incremental sync")
    with browser(1400, 900) as context:
        page = context.new_page()
        page.goto(url)  # the token buys the cookie once
        paints: list[float] = []
        for _ in range(rounds):
            page.reload()
            page.wait_for_function("() => 'machine1' in window.ecfWeb.painted", timeout=180000)
            page.wait_for_selector('.node[data-path="/big/f0"]')
            paints.append(page.evaluate("() => window.ecfWeb.painted.machine1") / 1000)
        nodes = page.evaluate("() => document.querySelectorAll('.node').length")
        print(
            f"first paint of the {tasks:,}-task suite (navigation start → rows drawn): {stats(paints)} "
            f"({nodes} row elements in the DOM)"
        )
        heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0") / 2**20
        print(
            f"memory: the page's JavaScript heap {heap:.0f} MB; "
            f"the page server (ecflow-remote web) {rss_mb(server_pid):.0f} MB"
        )
        t0 = time.perf_counter()
        page.select_option("#state-filter", "aborted")
        page.wait_for_function("() => document.querySelector('#count').textContent.includes('shown')")
        filtered = time.perf_counter() - t0
        page.select_option("#state-filter", "")
        row = page.locator('.node[data-server="machine1"][data-path="/big/f0"] .tw')
        t0 = time.perf_counter()
        row.click()
        page.wait_for_selector('.node[data-path="/big/f0/t0"]')
        opened = time.perf_counter() - t0
        print(
            f"filter {tasks:,} nodes by state: {filtered * 1000:.0f} ms; open a 100-task family: {opened * 1000:.0f} ms"
        )

        # Two kinds of change: a state forced (its family's state changes too) and a suspension.
        changes: dict[str, Callable[[int], tuple[list[str], str, str]]] = {
            "state forced": lambda i: (
                [f"--force={'aborted' if i % 2 == 0 else 'queued'}"],
                "state",
                "aborted" if i % 2 == 0 else "queued",
            ),
            "suspended/resumed": lambda i: (
                ["--suspend" if i % 2 == 0 else "--resume"],
                "suspended",
                "1" if i % 2 == 0 else "0",
            ),
        }
        worst = 0.0
        for kind, change in changes.items():
            from_start: list[float] = []
            from_applied: list[float] = []
            for i in range(rounds):
                path = f"/big/f0/t{i // 2}"
                args, attribute, value = change(i)
                t0 = time.perf_counter()
                centre.ecflow_client("machine1", port, [*args, path])
                t1 = time.perf_counter()
                page.wait_for_selector(f'.node[data-path="{path}"][data-{attribute}="{value}"]', timeout=30000)
                t2 = time.perf_counter()
                from_start.append(t2 - t0)
                from_applied.append(t2 - t1)
            worst = max(worst, *from_start)
            print(
                f"{kind} on the server → shown on the page: {stats(from_start)} "
                f"(from the command's return: {stats(from_applied)})"
            )
        print(
            f"ratios to the targets: first paint {statistics.median(paints) / FIRST_PAINT_TARGET:.2f} of 1 s, "
            f"live change (max) {worst / LIVE_TARGET:.2f} of 2 s"
        )
        shot = Path(tempfile.gettempdir()) / "ecflow-remote-web-bench.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--families", type=int, default=100, help="families of 100 tasks (1000: 100 000 tasks)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("bench/web.py: needs Linux and root (the simulated Centre uses network namespaces)", file=sys.stderr)
        return 2
    from centre.isolation import isolate_resolver

    isolate_resolver()  # before any thread
    from centre import Centre, cleanup_stale
    from centre.isolation import private_runtime
    from centre.webshot import start_web

    from ecflow_remote.tunnel.handle import Tunnel

    cleanup_stale()
    with private_runtime("ecfr-bench-web-"), Centre() as centre:
        spec = centre.server("machine1")
        definition = centre.ecf_home(spec) / "big.def"
        definition.write_text(suite_text(args.families))
        centre.ecflow_client("machine1", spec.port, [f"--load={definition}"])
        centre.ecflow_client("machine1", spec.port, ["--begin=big"])
        tunnel = Tunnel(centre.write_profile(centre.base / "profile-web.toml", "local"))
        tunnel.up()
        proc, url = start_web(tunnel.profile.path)
        try:
            measure(centre, url, args.rounds, args.families * PER_FAMILY, proc.pid)
        finally:
            proc.terminate()
            proc.wait(15)
            tunnel.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
