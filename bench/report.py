"""The LAN bench's report: the machine it ran on, the table of every configuration's figures (raw ssh against
ecflow-remote, the ratio of the best of each), and the results saved to bench/results/."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from measures import Config

RESULTS = Path(__file__).resolve().parent / "results"


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


def save(prefix: str, stamp: str, data: dict[str, Any], text: str, started: float) -> None:
    """Results to bench/results/ (json and the markdown table), then the table to stdout."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{prefix}-{stamp}.json").write_text(json.dumps(data, indent=1))
    (RESULTS / f"{prefix}-{stamp}.md").write_text(text + "\n")
    print()
    print(text)
    print(f"\n(results: {RESULTS}/{prefix}-{stamp}.{{json,md}}, {time.time() - started:.0f} s)")
