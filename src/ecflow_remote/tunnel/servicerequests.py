"""Requests to carry more services, as they cross a process boundary: the version-1 document of Wanted rows (`ui`
and `run` to the supervisor's inbox, the log-server finder's answers), and request files for an older supervisor."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from ecflow_remote.endpoints import Wanted
from ecflow_remote.safefile import write_atomic

REQUEST_PREFIX: Final = "join-"  # request files in the run directory: join-<token>.json
MAX_REQUEST: Final = 1024 * 1024
MAX_SERVERS: Final = 500


def encode(servers: Sequence[Wanted]) -> bytes:
    """The version-1 document, on one line (the finder sends one a line)."""
    return json.dumps({"version": 1, "servers": [w.to_json() for w in servers]}).encode()


def decode(data: bytes, max_bytes: int = MAX_REQUEST, max_servers: int | None = MAX_SERVERS) -> list[Wanted]:
    """A document's services; ValueError naming what is wrong (a JSON or UTF-8 error is one too): the supervisor
    then warns and drops the request."""
    if len(data) > max_bytes:
        raise ValueError(f"over {max_bytes} bytes")
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("servers"), list):
        raise ValueError("not a version 1 request")
    rows = doc["servers"]
    if max_servers is not None and len(rows) > max_servers:
        raise ValueError(f"over {max_servers} servers")
    return [Wanted.from_json(row) for row in rows]


def request_path(rundir: Path) -> Path:
    return rundir / f"{REQUEST_PREFIX}{secrets.token_hex(8)}.json"


def write_request(rundir: Path, servers: Sequence[Wanted]) -> Path:
    """A request file, for a supervisor from before the inbox (upgraded while it ran: inbox.ask): a 0600 file in
    the 0700 run directory, written whole before it appears under its name; the supervisor removes it once it has
    answered."""
    path = request_path(rundir)
    write_atomic(path, encode(servers), mode=0o600)
    return path


def ask_by_file(
    rundir: Path, servers: Sequence[Wanted], timeout: float = 10.0, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Write a request file and wait until the supervisor has answered it (its state then has the endpoints); False
    if it did not within `timeout`. Only for a supervisor without an inbox (inbox.ask)."""
    if not servers:
        return True
    path = write_request(rundir, servers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if not path.exists():
            return True
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        path.unlink()
    return False
