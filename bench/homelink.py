"""`make bench`, home-link table: the how-to's command (with and without -C) and ecflow-remote over an emulated
home link (the Centre's home-link knob), for each first-hop kind (direct, a ProxyCommand relaying ssh over the link
as `tsh proxy ssh` does, a local TCP relay in front of the jump host) and both link profiles in one run,
configurations interleaved."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from measures import Target, ecflow_client, payloads, pct, timed
from report import machine, save

MB20 = 20 * 1024 * 1024
PROFILES = [  # (round trip s, down Mbit/s, up Mbit/s): the two home links
    (0.030, 100.0, 20.0),
    (0.040, 50.0, 10.0),
]
BIG_SUITE_TASKS = 10_000
HOPS = {  # the Centre's first-hop kinds (centre/firsthop.py), as the tables name them
    "direct": "direct",
    "proxycommand": "a ProxyCommand relaying ssh (as `tsh proxy ssh`)",
    "relay": "a local TCP relay",
}


class Gateway(Protocol):
    """One way from home to the Centre's services; started and stopped by the bench."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ecflow(self, host: str, port: int) -> tuple[str, int]: ...
    def logserver(self, host: str, port: int) -> Target: ...


@dataclass
class RawGateway:
    """The how-to's `ssh -J … -N -L …` (with -C: its exact command)."""

    centre: Any
    compression: bool
    tunnel: Any = None

    def start(self) -> None:
        from centre import howto

        self.tunnel = howto.local_forward(self.centre, self.compression).start()
        # Ready = every ecFlow server answers, as `ecflow-remote up` waits for.
        for s in self.centre.servers:
            ecflow_client(*self.tunnel.endpoint(s.host, s.port)).ping()

    def stop(self) -> None:
        if self.tunnel:
            self.tunnel.stop()

    def ecflow(self, host: str, port: int) -> tuple[str, int]:
        return self.tunnel.endpoint(host, port)  # type: ignore[no-any-return]

    def logserver(self, host: str, port: int) -> Target:
        return Target(*self.tunnel.endpoint(host, port))


@dataclass
class OursGateway:
    """`ecflow-remote up --method <method>` (its supervisor, as a user starts it)."""

    centre: Any
    workdir: Path
    method: str
    transport: str = "auto"  # the profile's gateway.transport: the far-side agent, or plain OpenSSH forwards
    tunnel: Any = None

    def start(self) -> None:
        from ecflow_remote.tunnel.handle import Tunnel

        if self.tunnel is None:
            path = self.workdir / f"homelink-{self.method}-{self.transport}.toml"
            profile = self.centre.write_profile(path, self.method, transport=self.transport)
            self.tunnel = Tunnel(profile)
        self.tunnel.up()

    def stop(self) -> None:
        if self.tunnel:
            self.tunnel.down()

    def ecflow(self, host: str, port: int) -> tuple[str, int]:
        return self.tunnel.endpoint(host)  # type: ignore[no-any-return]

    def logserver(self, host: str, port: int) -> Target:
        e = next(e for e in self.tunnel.plan().logservers() if e.host == host)
        return Target(e.local_host, e.local_port)

    def carrier(self) -> str:
        """What carries new connections now ("agent" or "ssh"), as `status` says: what `auto` chose."""
        state = self.tunnel.state()
        return str(state.carrier) if state is not None else "down"


# The columns, in order; the first two are the baselines every other column is compared with.
CONFIGS: list[tuple[str, str, Callable[[Any, Path], Gateway]]] = [
    ("howto", "how-to `ssh -C -L`", lambda c, w: RawGateway(c, True)),
    ("raw", "`ssh -L`", lambda c, w: RawGateway(c, False)),
    ("local", "ecflow-remote local, `auto`", lambda c, w: OursGateway(c, w, "local")),
    ("plain", "ecflow-remote local, plain forwards", lambda c, w: OursGateway(c, w, "local", "plain")),
]


@dataclass
class Column:
    key: str
    title: str
    gw: Gateway
    samples: dict[str, list[float]] = field(default_factory=dict)
    carriers: list[str] = field(default_factory=list)  # ecflow-remote's: what carried new connections, per round

    def add(self, name: str, xs: list[float]) -> None:
        self.samples.setdefault(name, []).extend(xs)


def get_all(target: Target, path: Path) -> float:
    """Seconds for one log-server `get` of a whole file; checks every byte arrived."""
    t0 = time.perf_counter()
    data = target.request(f"get {path}", timeout=120)
    if len(data) != path.stat().st_size:
        raise RuntimeError(f"get {path}: {len(data)} bytes, expected {path.stat().st_size}")
    return time.perf_counter() - t0


def sync_local(host: str, port: int) -> None:
    """The full definition, as a user's script fetches it: a new client has nothing cached."""
    import ecflow

    c = ecflow.Client(host, port)
    c.sync_local()
    if len(c.get_defs().get_all_tasks()) < BIG_SUITE_TASKS:
        raise RuntimeError("sync_local: the big suite is missing")


def pings_while_streaming(col: Column, ping: tuple[str, int], target: Target, path: Path) -> list[float]:
    """ecFlow pings (new connections) while a 20 MB output streams through the same gateway."""
    done = threading.Event()
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            get_all(target, path)
        except BaseException as e:  # reported below: a failed stream makes the pings meaningless
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(0.3)  # past the stream's slow start: the link is full
    client = ecflow_client(*ping)
    out = []
    while not done.is_set():
        t0 = time.perf_counter()
        client.ping()
        if not done.is_set():  # only pings that were entirely under load
            out.append(time.perf_counter() - t0)
    t.join()
    if errors:
        raise errors[0]
    return out


def measure_round(centre: Any, col: Column, files: dict[str, Path], n: int, only: set[str] | None = None) -> None:
    """One round of every measure (or of those in `only`) through one gateway, started and stopped for it."""
    spec = centre.servers[0]
    lg = next(lg for lg in centre.logservers if lg.host == spec.logserver)
    t0 = time.perf_counter()
    col.gw.start()
    col.add("ready", [time.perf_counter() - t0])
    try:
        ping = col.gw.ecflow(spec.host, spec.port)
        target = col.gw.logserver(lg.host, lg.port)
        small = centre.jobout(spec)
        measures: dict[str, Callable[[], list[float]]] = {
            "ping": lambda: timed(ecflow_client(*ping).ping, n),
            "small": lambda: timed(lambda: target.request(f"get {small}"), n),
            "defs": lambda: timed(lambda: sync_local(*ping), max(2, n // 4)),
            "text": lambda: [get_all(target, files["compressible"])],
            "random": lambda: [get_all(target, files["random"])],
            "loaded": lambda: pings_while_streaming(col, ping, target, files["random"]),
        }
        for name, measure in measures.items():
            if only is None or name in only:
                col.add(name, measure())
        if isinstance(col.gw, OursGateway):
            col.carriers.append(col.gw.carrier())
    finally:
        col.gw.stop()


# ---------------------------------------------------------------------------------------------- report

# name, label, unit scale, digits, whether a p99 is worth printing
ROWS = [
    ("ping", "ecFlow ping, new connection", 1000, 0, True),
    ("small", "small job output through a log server", 1000, 0, True),
    ("defs", f"full definition, {BIG_SUITE_TASKS} tasks (python3-ecflow `sync_local`)", 1, 2, False),
    ("text", "20 MB text job output through a log server", 1, 2, False),
    ("random", "20 MB random job output", 1, 2, False),
    ("loaded", "ecFlow ping while a 20 MB output streams", 1000, 0, True),
    ("ready", "start → all servers ready", 1, 2, False),
]


def target_for(name: str, rtt: float, med: dict[str, dict[str, float]]) -> tuple[str, float]:
    """The issue's target for one measure: its wording and the limit in seconds (lower is better for all)."""
    howto, raw = med["howto"], med["raw"]
    if name in ("ping", "small"):
        return "≤ 1.2 × RTT + 3 ms", 1.2 * rtt + 0.003
    if name == "defs":
        return "≥ 1.5× faster than the how-to", howto[name] / 1.5
    if name == "text":
        return "≥ 1.15× faster than the how-to", howto[name] / 1.15
    if name == "random":
        return "≥ 1.0× raw `ssh -L`", raw[name]
    if name == "loaded":
        return "≤ the how-to", howto[name]
    return "≤ the how-to + 1 RTT + 0.2 s", howto[name] + rtt + 0.2


def table(link: tuple[float, float, float], cols: list[Column], kind: str) -> tuple[str, dict[str, Any]]:
    rtt, down, up = link
    med = {c.key: {k: statistics.median(v) for k, v in c.samples.items() if v} for c in cols}
    p99 = {c.key: {k: pct(v, 0.99) for k, v in c.samples.items() if v} for c in cols}
    others = cols[2:]
    head = ["measure (median; p99)", *(c.title for c in cols)]
    for c in others:
        head += [f"{c.title}: × vs how-to / raw", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts: dict[str, dict[str, bool]] = {c.key: {} for c in others}
    for name, label, scale, digits, tail in ROWS:
        if name not in med["howto"]:
            continue  # not measured in this run (--measures)

        def cell(key: str, name: str = name, scale: int = scale, digits: int = digits, tail: bool = tail) -> str:
            if name not in med[key]:
                return "—"
            text = f"{med[key][name] * scale:.{digits}f}{' ms' if scale == 1000 else ' s'}"
            return f"{text} ({p99[key][name] * scale:.{digits}f})" if tail else text

        row = [label, *(cell(c.key) for c in cols)]
        wording, limit = target_for(name, rtt, med)
        for c in others:
            v = med[c.key][name]
            row += [f"{med['howto'][name] / v:.2f}× / {med['raw'][name] / v:.2f}×", wording, "✓" if v <= limit else "✗"]
            verdicts[c.key][name] = v <= limit
        lines.append("| " + " | ".join(row) + " |")
    for c in others:
        if c.carriers:
            lines += ["", f"{c.title}: new connections carried by " + ", ".join(c.carriers) + " (each round's end)"]
    title = f"### Home link {rtt * 1000:g} ms round trip, {down:g}/{up:g} Mbit/s down/up, first hop: {HOPS[kind]}"
    data = {
        "link": {"rtt": rtt, "down_mbit": down, "up_mbit": up},
        "first_hop": kind,
        "median_s": med,
        "p99_s": p99,
        "met": verdicts,
        "carriers": {c.key: c.carriers for c in others},
    }
    return "\n".join([title, "", *lines]), data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per link profile")
    ap.add_argument("-n", type=int, default=10, help="requests per measure and round")
    ap.add_argument("--quick", action="store_true", help="one round of few requests (a smoke run)")
    ap.add_argument("--only", help="comma-separated column keys besides the baselines (e.g. local)")
    ap.add_argument("--hops", default=",".join(HOPS), help=f"comma-separated first-hop kinds ({', '.join(HOPS)})")
    ap.add_argument("--measures", help="comma-separated rows to measure besides start → ready (e.g. ping)")
    ap.add_argument("--links", help="comma-separated round trips in ms of the link profiles to run (e.g. 30)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.n = 1, 4
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("bench: needs Linux and root (the simulated Centre uses network namespaces)", file=sys.stderr)
        return 2
    from centre.isolation import isolate_resolver, private_runtime

    isolate_resolver()  # before any thread
    from centre import Centre, HomeLink, cleanup_stale
    from centre.bigsuite import load_big_suite

    cleanup_stale()
    started = time.time()
    tables, results = [], []
    with private_runtime() as work, Centre() as centre:
        print(f"homelink bench: Centre {centre.run_id} up; 20 MB outputs, a {BIG_SUITE_TASKS}-task suite", flush=True)
        files = payloads(centre, MB20)
        load_big_suite(centre, centre.servers[0].host, "big", BIG_SUITE_TASKS)
        only = set(args.measures.split(",")) if args.measures else None
        links = [p for p in PROFILES if not args.links or f"{p[0] * 1000:g}" in args.links.split(",")]
        for kind in args.hops.split(","):
            centre.set_first_hop(kind)
            for link in links:
                rtt, down, up = link
                centre.set_home_link(HomeLink(rtt, down, up))
                where = f"{centre.home_link.describe()}, first hop {kind}"  # type: ignore[union-attr]
                print(f"homelink bench: {where}, {args.rounds} rounds", flush=True)
                wanted = set(args.only.split(",")) if args.only else None
                cols = [
                    Column(key, title, make(centre, work))
                    for key, title, make in CONFIGS
                    if wanted is None or key in ("howto", "raw") or key in wanted
                ]
                for _ in range(args.rounds):
                    for col in cols:
                        measure_round(centre, col, files, args.n, only)
                text, data = table(link, cols, kind)
                print(text, flush=True)
                tables.append(text)
                results.append(data)
        centre.set_home_link(None)
        centre.set_first_hop("direct")
    text = "\n\n".join(
        [
            "## Over a home link (the Centre's emulated home↔jump link)",
            *tables,
            "Ratios: how many times faster than the how-to's exact command (`ssh -J … -C -N -L …`) and than the same "
            "without -C; p99 in brackets. Targets from the far-side agent issue; every ecFlow client opens a new "
            "connection per command, so the ping is on a new connection.",
        ]
    )
    doc = {"machine": machine(), "started": started, "duration_s": time.time() - started, "profiles": results}
    save("homelink", time.strftime("%Y%m%d-%H%M%S"), doc, text, started)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
