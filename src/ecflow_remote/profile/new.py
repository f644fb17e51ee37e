"""`ecflow-remote init`: a new profile's values from flags, answers and ecflow_ui's server list."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ecflow_remote.errors import InitError
from ecflow_remote.plan import is_loopback
from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT
from ecflow_remote.profile.render import render_profile
from ecflow_remote.ui import servers as uiconfig


def default_method() -> str:
    """hosts on Linux (real names, any number of log servers, no system change); local elsewhere, where the
    private hosts view does not exist."""
    return "hosts" if sys.platform.startswith("linux") else "local"


def _port(text: str, what: str, example: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise InitError(f"{what}: {text!r} is not a TCP port (1-65535), e.g. {example}")
    return int(text)


def parse_server(spec: str) -> tuple[str, str, int]:
    """`NAME=HOST:PORT` (or `HOST:PORT`, named after the host) from --server."""
    example = "--server machine1=machine1:4141 (or --server machine1:4141)"
    name, sep, target = spec.partition("=")
    if not sep:
        name, target = "", spec
    host, colon, port = target.rpartition(":")
    if not colon or not host:
        raise InitError(f"--server {spec!r}: expected NAME=HOST:PORT or HOST:PORT, e.g. {example}")
    return (name or host).strip(), host.strip(), _port(port.strip(), f"--server {spec!r}", example)


def parse_logserver(spec: str) -> tuple[str, int]:
    """`HOST[:PORT]` from --logserver; the port defaults to the log server's 9316."""
    host, colon, port = spec.rpartition(":")
    if not colon:
        host, port = spec, str(DEFAULT_LOGSERVER_PORT)
    if not host.strip():
        raise InitError(f"--logserver {spec!r}: expected HOST[:PORT], e.g. --logserver logserver1")
    return host.strip(), _port(port.strip(), f"--logserver {spec!r}", "--logserver logserver1:9316")


@dataclass
class Imported:
    """Servers taken from an ecflow_ui servers.txt, and the rows left out (with why)."""

    servers: list[tuple[str, str, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def import_ui_servers(path: Path | None) -> Imported:
    """The servers of an ecflow_ui servers.txt (default: the user's own), as profile entries.

    Rows pointing at this machine (the how-to's `localhost` forwards) say nothing about where the server is at
    the Centre, so they are left out and reported.
    """
    path = uiconfig.default_servers_txt() if path is None else path
    result = Imported()
    for row in uiconfig.read_servers_txt(path):
        if is_loopback(row.host, by_name=True):
            result.skipped.append(f"{row.name} ({row.host}:{row.port}: a local forward, not the Centre's host)")
        else:
            result.servers.append((row.name, row.host, row.port))
    return result


def combine_servers(
    given: Iterable[tuple[str, str, int]], imported: Iterable[tuple[str, str, int]]
) -> list[tuple[str, str, int]]:
    """The --server entries, then imported ones under names not yet taken; a name given twice is an error."""
    servers: list[tuple[str, str, int]] = []
    names: set[str] = set()
    for name, host, port in given:
        if name in names:
            raise InitError(f"--server: the name {name!r} is given twice; each server needs its own name")
        names.add(name)
        servers.append((name, host, port))
    for name, host, port in imported:
        if name not in names:
            names.add(name)
            servers.append((name, host, port))
    return servers


def profile_text(
    *,
    host: str,
    jump: str | None,
    servers: Sequence[tuple[str, str, int]],
    logservers: Sequence[tuple[str, int]],
    method: str,
    ssh_config: str | None = None,
) -> str:
    """The commented profile for these values (ProfileError naming the key if one would not load back)."""
    if not servers:
        raise InitError(
            "no ecFlow server given: add --server NAME=HOST:PORT (repeatable), or --import-ui-servers to take "
            "them from ecflow_ui's servers.txt"
        )
    return render_profile(jump or None, host, list(servers), list(logservers), method, ssh_config)
