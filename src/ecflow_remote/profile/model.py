"""The profile's model: frozen dataclasses for the gateway, servers and log servers, and the ssh hop syntax."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, NoReturn, get_args

from ecflow_remote.errors import ProfileError

Method = Literal["local", "socks", "hosts"]
METHODS: Final[tuple[Method, ...]] = get_args(Method)
Transport = Literal["auto", "agent", "plain"]
TRANSPORTS: Final[tuple[Transport, ...]] = get_args(Transport)
# How an ecFlow server talks: its own framing in clear, inside TLS (ECF_SSL), or over HTTP(S) (5.15 and later).
Protocol = Literal["plain", "ssl", "http", "https"]
PROTOCOLS: Final[tuple[Protocol, ...]] = get_args(Protocol)
PasswordKind = Literal["env", "file", "keyring"]
PASSWORD_KINDS: Final[tuple[PasswordKind, ...]] = get_args(PasswordKind)

DEFAULT_METHOD: Final[Method] = "local"
DEFAULT_SOCKS_PORT: Final = 9050
DEFAULT_LOGSERVER_PORT: Final = 9316
DEFAULT_WARN_BEFORE: Final = 1800.0

# Host and user names end up as ssh arguments: a strict alphabet that never starts with "-" means no value can
# ever be read by ssh as an option (-oProxyCommand=...), and no whitespace, "%" (ssh_config tokens) or control
# characters can change its meaning.
_HOST_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_USER_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_MAX_HOST_LEN: Final = 253
_MAX_USER_LEN: Final = 64
_MAX_NAME_LEN: Final = 64


# --------------------------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class SshTarget:
    """One ssh hop as `ssh -J` takes it: [user@]host[:port]."""

    user: str | None
    host: str
    port: int | None = None

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port is not None else text

    def uri(self) -> str:
        """The `ssh://[user@]host[:port]` form: ssh's destination argument takes a port only this way."""
        return f"ssh://{self}"


@dataclass(frozen=True)
class Gateway:
    """How to reach the Centre: the jump hosts, the far end (the user's workstation) and the method."""

    jump: tuple[SshTarget, ...]
    host: SshTarget
    ssh_config: Path | None = None
    method: Method = DEFAULT_METHOD
    socks_port: int = DEFAULT_SOCKS_PORT
    ecflow_user: str | None = None
    login: str | None = None
    warn_before: float = DEFAULT_WARN_BEFORE
    # Where launched programs cannot have a private hosts view (macOS; Linux without namespaces): let the
    # supervisor manage a marked block in the system hosts file (systemhosts.py). Never without this opt-in.
    system_hosts: bool = False
    # What carries the forwards: the far-side agent (auto: where the workstation has python3 >= 3.6, else plain
    # OpenSSH forwards) — agent: only the agent; plain: only OpenSSH's forwards.
    transport: Transport = "auto"
    # The python3 the agent runs on at the workstation; None: the first of python3, platform-python, /usr/bin/python3.
    agent_python: str | None = None


@dataclass(frozen=True)
class PasswordSource:
    """Where a custom user's password comes from (never the password itself)."""

    kind: PasswordKind
    ref: str
    # The keyring entry's user name; the loader fills in the server's custom_user.
    username: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True)
class Server:
    """An ecFlow server at the Centre, as the user knows it."""

    name: str
    host: str
    port: int
    ecflow_user: str | None = None
    custom_user: str | None = None
    password: PasswordSource | None = None
    protocol: Protocol = "plain"


@dataclass(frozen=True)
class LogServer:
    """A log server at the Centre (serves job output to ecflow_ui)."""

    host: str
    port: int = DEFAULT_LOGSERVER_PORT


@dataclass(frozen=True)
class UiSettings:
    """The [ui] table: what `ecflow-remote ui` gives ecflow_ui beyond the profile's servers."""

    # Server-list files on the workstation (ECFLOW_SYSTEM_SERVERS_LIST at the Centre): None when the profile does
    # not say (then the workstation's login environment is asked), () for none at all.
    system_servers: tuple[str, ...] | None = None
    # The ecflow_ui to run; None: the first on PATH (a conda or Homebrew one before the system's), else Debian's.
    ecflow_ui: str | None = None


@dataclass(frozen=True)
class WebSettings:
    """The [web] table: the Centre's names the web proxy carries, and its port."""

    # Shell patterns ("*.ecmwf.int", "jupyterhub"), lower case; None: derived from the profile's host names.
    domains: tuple[str, ...] | None = None
    port: int | None = None  # None: a free port, chosen at each `up`


@dataclass(frozen=True)
class Profile:
    """A loaded, validated profile."""

    path: Path
    gateway: Gateway
    servers: tuple[Server, ...]
    logservers: tuple[LogServer, ...] = ()
    ui: UiSettings = UiSettings()
    web: WebSettings = WebSettings()

    def server(self, name: str) -> Server:
        """The server called `name`; ProfileError listing the known names otherwise."""
        for server in self.servers:
            if server.name == name:
                return server
        known = ", ".join(s.name for s in self.servers) or "none"
        raise ProfileError(
            f"no server named {name!r} in the profile. Known servers: {known}.", path=self.path, key="server"
        )

    def with_method(self, method: str) -> Profile:
        """The same profile with another method (a command-line override)."""
        if method not in METHODS:
            raise ProfileError(
                f"{method!r} is not a method. Use one of: {', '.join(METHODS)}.", path=self.path, key="method"
            )
        chosen = next(m for m in METHODS if m == method)
        gateway = dataclasses.replace(self.gateway, method=chosen)
        return dataclasses.replace(self, gateway=gateway)

    def password_variables(self) -> set[str]:
        """Every variable a server's password is read from (`password = "env:VAR"`)."""
        return {s.password.ref for s in self.servers if s.password is not None and s.password.kind == "env"}

    def without_password_variables(self, environ: Mapping[str, str]) -> dict[str, str]:
        """`environ` less the password variables, read yet or not: the environment of every process ecflow-remote
        starts (ssh, launched programs)."""
        names = self.password_variables()
        return {k: v for k, v in environ.items() if k not in names}

    def centre_hosts(self) -> list[str]:
        """The distinct host names of the servers and log servers, in profile order."""
        seen: dict[str, None] = {}
        for host in [s.host for s in self.servers] + [ls.host for ls in self.logservers]:
            seen.setdefault(host, None)
        return list(seen)


# --------------------------------------------------------------------------------------------- host and user names


def host_problem(value: str) -> str | None:
    """Why `value` is not a host name ssh can be given safely, or None if it is one."""
    if value == "":
        return "the host name is empty."
    if len(value) > _MAX_HOST_LEN:
        return f"the host name is longer than {_MAX_HOST_LEN} characters."
    if not _HOST_RE.fullmatch(value):
        if ":" in value and _HOST_RE.fullmatch(value.partition(":")[0]):
            return f"{value!r}: give the bare host name here and the port in its own key."
        return (
            f"{value!r} is not a plain host name: use letters, digits, '.', '-' and '_' only, "
            "not starting with '-' or '.' (no spaces, '%', quotes or other characters)."
        )
    return None


def user_problem(value: str) -> str | None:
    """Why `value` is not a user name ssh can be given safely, or None if it is one."""
    if value == "":
        return "the user name is empty."
    if len(value) > _MAX_USER_LEN:
        return f"the user name is longer than {_MAX_USER_LEN} characters."
    if not _USER_RE.fullmatch(value):
        return (
            f"{value!r} is not a plain user name: use letters, digits, '.', '-' and '_' only, "
            "not starting with '-' or '.'."
        )
    return None


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a server name (in ecflow_ui's files, paths and file names), or None."""
    # ecflow_ui's servers.txt is comma-separated, one server a line, "#" starts a comment; its node paths are
    # "name://suite/..."; names may also become file names. Spaces inside are fine, as in ecflow_ui.
    if len(value) > _MAX_NAME_LEN:
        return f"the server name is longer than {_MAX_NAME_LEN} characters."
    if not value.isprintable():
        return f"{value!r} contains control characters or line breaks. Use a plain name."
    bad = sorted({ch for ch in value if ch in ",:/\\"})
    if bad:
        return f"{value!r} contains {' '.join(repr(c) for c in bad)}: not allowed in a server name."
    if value[0] in "#-" or value != value.strip():
        return f"{value!r} must not start with '#' or '-', nor start or end with spaces."
    return None


def parse_target(text: str, where: str) -> SshTarget:
    """Parse `[user@]host[:port]` (one ssh hop); ProfileError naming `where` (e.g. gateway.jump) if bad."""

    def fail(message: str) -> NoReturn:
        raise ProfileError(message, key=where)

    value = text.strip()
    if value == "":
        fail("an empty ssh host. Write [user@]host[:port].")
    user: str | None = None
    if "@" in value:
        user, _, value = value.rpartition("@")
        problem = user_problem(user)
        if problem:
            fail(problem)
    port: int | None = None
    if ":" in value:
        value, _, port_text = value.partition(":")
        if not port_text.isdigit() or not port_text.isascii():
            fail(f"{port_text!r} is not a port number. Write [user@]host[:port].")
        port = int(port_text)
        if not 1 <= port <= 65535:
            fail(f"{port} is not a TCP port (1-65535). Fix the port number.")
    problem = host_problem(value)
    if problem:
        fail(problem)
    return SshTarget(user=user, host=value, port=port)
