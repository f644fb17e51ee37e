"""The processes a test can see, through /proc: what ran, with which command line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def cmdlines() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every live process; a process that ends while being read is skipped."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue


def all_cmdlines() -> bytes:
    """Every command line at once: to show a secret is in none of them."""
    return b"\n".join(b"\0".join(argv) for _, argv in cmdlines())


def pids_naming(path: Path) -> list[int]:
    """Every process whose command line names `path` (a tunnel's run dir: its supervisor, ssh legs, helpers)."""
    needle = str(path).encode()
    return [pid for pid, argv in cmdlines() if needle in b"\0".join(argv)]


def ssh_pids(path: Path) -> list[int]:
    """The ssh processes among them (its -E log, -S socket or ProxyCommand names the run dir)."""
    needle = str(path).encode()
    return [pid for pid, argv in cmdlines() if os.path.basename(argv[0]) == b"ssh" and needle in b" ".join(argv)]


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
