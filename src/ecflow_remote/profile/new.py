"""`ecflow-remote init`: a new profile's values from flags, answers and ecflow_ui's server list."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ecflow_remote import uiservers as uiconfig
from ecflow_remote.errors import InitError, ProfileError
from ecflow_remote.net import is_loopback
from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT
from ecflow_remote.profile.render import render_profile


def default_method() -> str:
    """hosts on Linux (real names, any number of log servers, no system change); local elsewhere, where the
    private hosts view does not exist."""
    return "hosts" if sys.platform.startswith("linux") else "local"


def _port(text: str, what: str, example: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise InitError(f"{what}: {text!r} is not a TCP port (1-65535), e.g. {example}")
    return int(text)


def parse_server(spec: str, flag: str = "--server") -> tuple[str, str, int]:
    """`NAME=HOST:PORT` (or `HOST:PORT`, named after the host) from --server (`flag`; "" for an answer)."""
    lead = f"{flag} " if flag else ""
    example = f"{lead}machine1=machine1:4141 (or {lead}machine1:4141)"
    name, sep, target = spec.partition("=")
    if not sep:
        name, target = "", spec
    host, colon, port = target.rpartition(":")
    if not colon or not host:
        raise InitError(f"{lead}{spec!r}: expected NAME=HOST:PORT or HOST:PORT, e.g. {example}")
    return (name or host).strip(), host.strip(), _port(port.strip(), f"{lead}{spec!r}", example)


def parse_logserver(spec: str, flag: str = "--logserver") -> tuple[str, int]:
    """`HOST[:PORT]` from --logserver (`flag`; "" for an answer); the port defaults to DEFAULT_LOGSERVER_PORT."""
    lead = f"{flag} " if flag else ""
    host, colon, port = spec.rpartition(":")
    if not colon:
        host, port = spec, str(DEFAULT_LOGSERVER_PORT)
    if not host.strip():
        raise InitError(f"{lead}{spec!r}: expected HOST[:PORT], e.g. {lead}logserver1")
    return host.strip(), _port(port.strip(), f"{lead}{spec!r}", f"{lead}logserver1:{DEFAULT_LOGSERVER_PORT}")


def as_written_path(text: str | None) -> str | None:
    """A path typed here, as the profile must hold it: `~/…` and absolute paths as typed, a relative one made
    absolute (the profile reads relative paths from its own directory, not from where `init` ran)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    return text if text.startswith("~") or os.path.isabs(text) else os.path.abspath(text)


def as_written_password(source: str) -> str:
    """A password source as the profile must hold it (file: paths as as_written_path makes them)."""
    kind, sep, ref = source.strip().partition(":")
    if kind == "file" and sep and ref.strip():
        return f"file:{as_written_path(ref)}"
    return source.strip()


def password_file_note(source: str) -> str | None:
    """For a `file:` source whose file does not exist yet: what to do before `up` (the loader checks the rest)."""
    kind, _, ref = source.partition(":")
    if kind != "file" or not ref.strip() or os.path.lexists(os.path.expanduser(ref)):
        return None
    return f"{ref} does not exist yet: put the password in it (alone on its line) and chmod 600 {ref} before `up`"


def suggested_ecflow_user(host: str, login: str) -> str | None:
    """The Centre user name from `host` ([user@]host) when it differs from `login`, the login name here: the name
    ecFlow's white lists most likely know (the server checks the laptop's login name otherwise)."""
    user, at, _ = host.rpartition("@")
    return user if at and user and user != login else None


@dataclass(frozen=True)
class NewServer:
    """One [[server]] of a new profile: where it is, and its custom user and password source, if any."""

    name: str
    host: str
    port: int
    custom_user: str | None = None
    password: str | None = None


# While no workstation or server is given yet, answers are checked with these in the profile (it must load).
_STAND_IN_HOST = "stand-in.invalid"
_STAND_IN = NewServer("stand-in", _STAND_IN_HOST, 1)


@dataclass(frozen=True)
class Answers:
    """Everything a new profile holds, from flags and answers; each answer is checked as it comes (problem())."""

    host: str = ""
    jump: str | None = None
    ssh_config: str | None = None
    ecflow_user: str | None = None
    servers: tuple[NewServer, ...] = ()
    logservers: tuple[tuple[str, int], ...] = ()
    method: str = field(default_factory=default_method)

    def server_names(self) -> list[str]:
        return [s.name for s in self.servers]

    def with_server(self, server: NewServer) -> Answers:
        """These answers with `server` added, or replacing the one of its name."""
        if server.name in self.server_names():
            return replace(self, servers=tuple(server if s.name == server.name else s for s in self.servers))
        return replace(self, servers=(*self.servers, server))

    def _render(self, servers: Sequence[NewServer], host: str) -> str:
        return render_profile(
            self.jump or None,
            host,
            [(s.name, s.host, s.port) for s in servers],
            list(self.logservers),
            self.method,
            self.ssh_config,
            self.ecflow_user,
            custom_users={s.name: (s.custom_user, s.password) for s in servers if s.custom_user},
        )

    def problem(self) -> str | None:
        """Why these answers would not load back as a profile (the key and what is wrong, one line), or None."""
        try:
            self._render(self.servers or (_STAND_IN,), self.host or _STAND_IN_HOST)
        except ProfileError as exc:
            return f"{exc.key}: {exc.message}" if exc.key else exc.message
        return None

    def text(self) -> str:
        """The commented profile (InitError without a server; ProfileError naming the key if one is wrong)."""
        if not self.servers:
            raise InitError(
                "no ecFlow server given: add --server NAME=HOST:PORT (repeatable), or --import-ui-servers to take "
                "them from ecflow_ui's servers.txt"
            )
        return self._render(self.servers, self.host)


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
