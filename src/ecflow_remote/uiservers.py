"""ecflow_ui's server list (servers.txt in its config dir): read tolerantly, write as ecflow_ui 5.9 does."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ecflow_remote.errors import UiConfigError
from ecflow_remote.safefile import write_atomic

SERVERS_FILE: Final = "servers.txt"
# The header ecflow_ui 5.9 writes; ecflow_ui skips every line starting with "#".
HEADER: Final = "#Name Host Port Favourite System Ssl user"
# Newer ecflow_ui releases store a protocol code where 5.9 has its ssl flag: 0 plain, 1 ssl, 2 http, 3 https.
_SSL_CODES: Final = frozenset({1, 3})
_MAX_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class UiServer:
    """One row of servers.txt."""

    name: str
    host: str
    port: int
    favourite: bool = False
    system: bool = False
    ssl: bool = False
    user: str = ""
    # The raw protocol code of newer releases (2 http, 3 https), kept so a rewrite does not lose it; None
    # for the 5.9 plain/ssl flag, which `ssl` carries.
    protocol: int | None = None

    def row(self) -> str:
        """The servers.txt line (without newline)."""
        code = self.protocol if self.protocol is not None else (1 if self.ssl else 0)
        fields = [self.name, self.host, str(self.port), _flag(self.favourite), _flag(self.system), str(code)]
        return ",".join([*fields, self.user])


def _flag(value: bool) -> str:
    return "1" if value else "0"


def default_ui_config_dir() -> Path:
    """ecflow_ui's config dir: $ECFLOWUI_CONFIG_DIR, else ~/.ecflow_ui_v5."""
    env = os.environ.get("ECFLOWUI_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".ecflow_ui_v5"


def default_servers_txt() -> Path:
    """The servers.txt ecflow_ui reads by default."""
    return default_ui_config_dir() / SERVERS_FILE


def _parse_row(text: str, path: Path, number: int) -> UiServer:
    def fail(message: str) -> UiConfigError:
        return UiConfigError(f"{message} (line: {text[:80]!r}). Fix or delete the line.", path=path, line=number)

    fields = text.split(",")
    if len(fields) < 3:
        raise fail("a server line needs at least name,host,port")
    name, host, port_text = fields[0], fields[1], fields[2].strip()
    if name == "":
        raise fail("the server name is empty")
    if host.strip() == "":
        raise fail("the host is empty")
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise fail(f"{port_text!r} is not a TCP port (1-65535)")
    # ecflow_ui counts only "1" as true; anything else (blank, 0, garbage) is false, so do the same.
    favourite = len(fields) > 3 and fields[3].strip() == "1"
    system = len(fields) > 4 and fields[4].strip() == "1"
    ssl = False
    protocol: int | None = None
    if len(fields) > 5 and fields[5].strip() != "":
        code_text = fields[5].strip()
        if not (code_text.isascii() and code_text.isdigit()):
            raise fail(f"{code_text!r} is not an ssl flag or protocol code (0-3)")
        code = int(code_text)
        if code > 3:
            raise fail(f"{code} is not an ssl flag or protocol code (0-3)")
        ssl = code in _SSL_CODES
        protocol = code if code > 1 else None
    user = fields[6].strip() if len(fields) > 6 else ""
    # Fields past the 7th (a later release's additions) are ignored, as ecflow_ui ignores them.
    return UiServer(
        name=name,
        host=host.strip(),
        port=int(port_text),
        favourite=favourite,
        system=system,
        ssl=ssl,
        user=user,
        protocol=protocol,
    )


def read_servers_txt(path: Path) -> list[UiServer]:
    """The servers listed in an ecflow_ui servers.txt; UiConfigError naming file and line if malformed."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise UiConfigError("no such file (ecflow_ui has no server list here).", path=path) from None
    except IsADirectoryError:
        raise UiConfigError("is a directory, not ecflow_ui's servers.txt.", path=path) from None
    except OSError as exc:
        raise UiConfigError(f"cannot read it: {exc.strerror}.", path=path) from None
    if len(raw) > _MAX_BYTES:
        raise UiConfigError("is too big to be ecflow_ui's server list.", path=path)
    # ecflow_ui reads bytes; names are almost always ASCII, so replace the odd bad byte rather than fail.
    text = raw.decode("utf-8", errors="replace")
    servers: list[UiServer] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped == "" or stripped.startswith("#"):
            continue
        servers.append(_parse_row(line.rstrip("\r"), path, number))
    return servers


def _check_field(value: str, what: str, server: UiServer, path: Path) -> None:
    # servers.txt has no quoting: a comma or line break would shift or split the row.
    if any(ch in value for ch in ",\n\r") or not value.isprintable():
        raise UiConfigError(
            f"cannot write server {server.name!r}: its {what} {value!r} contains a comma, a line break or a "
            "control character, which servers.txt cannot hold.",
            path=path,
        )


def format_servers_txt(servers: Iterable[UiServer], path: Path = Path(SERVERS_FILE)) -> str:
    """The text of a servers.txt holding `servers`, in the 5.9 format; UiConfigError for unwritable values."""
    lines = [HEADER]
    names: set[str] = set()
    for server in servers:
        _check_field(server.name, "name", server, path)
        _check_field(server.host, "host", server, path)
        _check_field(server.user, "user", server, path)
        if server.name == "" or server.name.lstrip().startswith("#"):
            raise UiConfigError(f"cannot write server name {server.name!r}: empty or starting with '#'.", path=path)
        if server.host.strip() == "":
            raise UiConfigError(f"cannot write server {server.name!r}: its host is empty.", path=path)
        if not 1 <= server.port <= 65535:
            raise UiConfigError(
                f"cannot write server {server.name!r}: port {server.port} is not a TCP port.", path=path
            )
        # ecflow_ui refuses to start on a duplicated name.
        if server.name in names:
            raise UiConfigError(f"cannot write server {server.name!r} twice: ecflow_ui needs unique names.", path=path)
        names.add(server.name)
        lines.append(server.row())
    return "\n".join(lines) + "\n"


def write_servers_txt(path: Path, servers: Iterable[UiServer]) -> None:
    """Write (atomically, replacing any old one) a servers.txt that ecflow_ui 5.9 reads."""
    path = Path(path).expanduser()
    text = format_servers_txt(servers, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    except OSError as exc:
        raise UiConfigError(f"cannot write it: {exc.strerror}.", path=path) from None
