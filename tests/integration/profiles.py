"""Profiles for the integration tests, written from the simulated Centre."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_profile(
    c: Any, path: Path, servers: dict[str, dict[str, str]] | None = None, method: str = "local", **gateway: Any
) -> Path:
    """The Centre's profile (method local by default), with extra keys for some [[server]] entries (custom_user,
    password...)."""
    c.write_profile(path, method, **gateway)
    out = []
    for line in path.read_text().splitlines():
        out.append(line)
        for name, keys in (servers or {}).items():
            if line == f'name = "{name}"':
                out += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path.write_text("\n".join(out) + "\n")
    return path
