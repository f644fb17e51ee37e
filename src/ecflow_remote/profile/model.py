"""The TOML profile: load, validate, render and write it, with errors that name the file, line and key."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, NoReturn, get_args

from ecflow_remote.errors import PasswordError, ProfileError, display_path

Method = Literal["local", "socks", "hosts"]
METHODS: Final[tuple[Method, ...]] = get_args(Method)
PasswordKind = Literal["env", "file", "keyring"]
PASSWORD_KINDS: Final[tuple[PasswordKind, ...]] = get_args(PasswordKind)

DEFAULT_METHOD: Final[Method] = "local"
DEFAULT_SOCKS_PORT: Final = 9050
DEFAULT_LOGSERVER_PORT: Final = 9316
DEFAULT_WARN_BEFORE: Final = 1800.0
MAX_PROFILE_BYTES: Final = 1024 * 1024
# A password file is a few bytes; a cap keeps a mistaken path (a log, a device) from being slurped.
MAX_PASSWORD_BYTES: Final = 64 * 1024

# Host and user names end up as ssh arguments: a strict alphabet that never starts with "-" means no value can
# ever be read by ssh as an option (-oProxyCommand=...), and no whitespace, "%" (ssh_config tokens) or control
# characters can change its meaning.
_HOST_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_USER_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_HOST_LEN: Final = 253
_MAX_USER_LEN: Final = 64
_MAX_NAME_LEN: Final = 64
_DURATION_RE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*")
_DURATION_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}

_TOP_KEYS: Final = ("gateway", "server", "logserver")
_GATEWAY_KEYS: Final = (
    "jump",
    "host",
    "ssh_config",
    "method",
    "socks_port",
    "ecflow_user",
    "login",
    "warn_before",
    "system_hosts",
)
_SERVER_KEYS: Final = ("name", "host", "port", "ecflow_user", "custom_user", "password")
_LOGSERVER_KEYS: Final = ("host", "port")
_PASSWORD_HELP: Final = (
    'write where the password comes from: "env:VARIABLE", "file:~/path" or "keyring:SERVICE"'
    " — never the password itself"
)


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


@dataclass(frozen=True)
class PasswordSource:
    """Where a custom user's password comes from (never the password itself)."""

    kind: PasswordKind
    ref: str
    # The keyring entry's user name; the loader fills in the server's custom_user.
    username: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"

    def read(self) -> str:
        """Return the password; raise PasswordError (without the secret in it) if it cannot be had."""
        if self.kind == "env":
            return self._read_env()
        if self.kind == "file":
            return self._read_file()
        return self._read_keyring()

    def _read_env(self) -> str:
        value = os.environ.get(self.ref)
        if value is None:
            raise PasswordError(
                f"the password variable ${self.ref} is not set. Export it (export {self.ref}=...) "
                "in the shell that runs ecflow-remote."
            )
        if value == "":
            raise PasswordError(f"the password variable ${self.ref} is empty. Set it to the password.")
        return value

    def _read_file(self) -> str:
        path = Path(self.ref).expanduser()
        shown = display_path(path)
        # O_NONBLOCK: a FIFO or device given by mistake must not hang the open; fstat on the opened descriptor
        # checks the very file that is read (no race between a check and the open).
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise PasswordError(f"the password file {shown} does not exist. Create it (chmod 600).") from None
        except PermissionError:
            raise PasswordError(f"the password file {shown} cannot be read: permission denied.") from None
        except OSError as exc:
            raise PasswordError(f"the password file {shown} cannot be opened: {exc.strerror}.") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise PasswordError(f"the password file {shown} is not a regular file.")
            if info.st_mode & 0o077:
                raise PasswordError(
                    f"the password file {shown} can be read by others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}): refused. Run: chmod 600 {shown}"
                )
            chunks: list[bytes] = []
            size = 0
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_PASSWORD_BYTES:
                    raise PasswordError(
                        f"the password file {shown} is bigger than {MAX_PASSWORD_BYTES} bytes: is it the right file?"
                    )
        finally:
            os.close(fd)
        try:
            text = b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise PasswordError(f"the password file {shown} is not UTF-8 text.") from None
        # Editors add a final newline that is not part of the password; anything else is kept as written.
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        if text == "":
            raise PasswordError(f"the password file {shown} is empty. Write the password into it.")
        return text

    def _read_keyring(self) -> str:
        username = self.username or self.ref
        try:
            import keyring
        except ImportError:
            raise PasswordError(
                f"the password is in the keyring (service {self.ref!r}) but the keyring library is not "
                "installed. Install it: pip install 'ecflow-remote[keyring]'."
            ) from None
        try:
            value = keyring.get_password(self.ref, username)
        except Exception as exc:  # any backend failure: no keyring daemon, locked store, ...
            raise PasswordError(
                f"the keyring could not be read (service {self.ref!r}, user {username!r}): {type(exc).__name__}: {exc}"
            ) from None
        if not value:
            raise PasswordError(
                f"the keyring has no password for service {self.ref!r}, user {username!r}. "
                f"Store it: keyring set {self.ref} {username}"
            )
        return str(value)


@dataclass(frozen=True)
class Server:
    """An ecFlow server at the Centre, as the user knows it."""

    name: str
    host: str
    port: int
    ecflow_user: str | None = None
    custom_user: str | None = None
    password: PasswordSource | None = None


@dataclass(frozen=True)
class LogServer:
    """A log server at the Centre (serves job output to ecflow_ui)."""

    host: str
    port: int = DEFAULT_LOGSERVER_PORT


@dataclass(frozen=True)
class Profile:
    """A loaded, validated profile."""

    path: Path
    gateway: Gateway
    servers: tuple[Server, ...]
    logservers: tuple[LogServer, ...] = ()

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

    def centre_hosts(self) -> list[str]:
        """The distinct host names of the servers and log servers, in profile order."""
        seen: dict[str, None] = {}
        for host in [s.host for s in self.servers] + [ls.host for ls in self.logservers]:
            seen.setdefault(host, None)
        return list(seen)


# --------------------------------------------------------------------------------------------- locations


class _Locator:
    """Best-effort line numbers for keys: tomllib reports none, so the source text is scanned for them."""

    _HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*(\]\]?)\s*(?:#.*)?")
    _KEY = re.compile(r"\s*([\"']?)([A-Za-z0-9_\-]+)\1\s*=")

    def __init__(self, text: str) -> None:
        # (table, index, key) -> line; table "" is the top level, index counts [[table]] from 1, key None is
        # the table's own header.
        self._lines: dict[tuple[str, int | None, str | None], int] = {}
        counts: dict[str, int] = {}
        section: tuple[str, int | None] = ("", None)
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = self._HEADER.fullmatch(line)
            if header and len(header.group(1)) == len(header.group(3)):
                name = header.group(2).strip().strip("\"'")
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, 0) + 1
                    section = (name, counts[name])
                else:
                    section = (name, None)
                self._lines.setdefault((*section, None), number)
                continue
            key = self._KEY.match(line)
            if key:
                self._lines.setdefault((*section, key.group(2)), number)
                if section == ("", None):
                    # `gateway = {...}` at top level: the table's line.
                    self._lines.setdefault((key.group(2), None, None), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_multiline = quote
                    break

    def line(self, table: str, index: int | None = None, key: str | None = None) -> int | None:
        """The line of `key` in the table (or of the table if the key is not written there), else None."""
        if key is not None:
            found = self._lines.get((table, index, key))
            if found is not None:
                return found
        if table == "":
            # An unknown top-level key may be written as a [table] or [[table]] header.
            if key is None:
                return None
            return self._lines.get((key, None, None)) or self._lines.get((key, 1, None))
        return self._lines.get((table, index, None))


class _Checker:
    """Validates the parsed TOML document into a Profile; the first problem raises ProfileError."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.locator = _Locator(text)
        self.base_dir = path.expanduser().absolute().parent

    def fail(self, message: str, table: str, index: int | None = None, key: str | None = None) -> NoReturn:
        if table == "":
            label = key or ""
        else:
            label = table if index is None else f"{table}[{index}]"
            if key is not None:
                label = f"{label}.{key}"
        raise ProfileError(
            message, path=self.path, key=label or None, line=self.locator.line(table, index, key)
        ) from None

    # -- generic helpers

    def check_keys(self, data: dict[str, object], allowed: tuple[str, ...], table: str, index: int | None) -> None:
        import difflib

        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                where = "at the top level" if table == "" else f"in [{table}]" if index is None else f"in [[{table}]]"
                self.fail(f"unknown key {key!r} {where}.{hint} Known keys: {', '.join(allowed)}.", table, index, key)

    def get_str(
        self,
        data: dict[str, object],
        key: str,
        table: str,
        index: int | None = None,
        *,
        required: bool = False,
        secret: bool = False,
    ) -> str | None:
        if key not in data:
            if required:
                self.fail(f'missing required key {key!r}. Add it: {key} = "..."', table, index, key)
            return None
        value = data[key]
        if not isinstance(value, str):
            if secret:
                # Never echoed, and "quote it" would be the wrong advice: the value may be the password itself.
                self.fail(f"expected a string, got {_type_name(value)}: {_PASSWORD_HELP}.", table, index, key)
            self.fail(f"expected a string, got {_type_name(value)} ({_short(value)}). Quote it.", table, index, key)
        if value.strip() == "":
            self.fail("is empty. Give a value or remove the key.", table, index, key)
        return value

    def get_port(self, data: dict[str, object], key: str, table: str, index: int | None, default: int | None) -> int:
        if key not in data:
            if default is None:
                self.fail(f"missing required key {key!r}. Add it: {key} = 4141", table, index, key)
            return default
        value = data[key]
        # bool is an int in Python; `port = true` is a mistake, not port 1.
        if isinstance(value, bool) or not isinstance(value, int):
            hint = " Write the number without quotes." if isinstance(value, str) else ""
            self.fail(
                f"expected an integer TCP port, got {_type_name(value)} ({_short(value)}).{hint}",
                table,
                index,
                key,
            )
        if not 1 <= value <= 65535:
            self.fail(f"{value} is not a TCP port (1-65535). Fix the port number.", table, index, key)
        return value

    def endpoint(
        self,
        entry: dict[str, object],
        table: str,
        index: int,
        default_port: int | None,
        seen: dict[tuple[str, int], int],
        *,
        clash_key: str,
    ) -> tuple[str, int]:
        """host and port of a [[server]] or [[logserver]] entry, checked, and not those of an earlier entry in
        `seen` (which it joins); a clash is reported at `clash_key`."""
        host = self.get_str(entry, "host", table, index, required=True)
        assert host is not None
        self.check_host(host, table, index, "host")
        port = self.get_port(entry, "port", table, index, default_port)
        key = (host.lower(), port)
        if key in seen:
            self.fail(f"{host}:{port} is already {table}[{seen[key]}]. Remove one of them.", table, index, clash_key)
        seen[key] = index
        return host, port

    def check_host(self, value: str, table: str, index: int | None, key: str) -> str:
        problem = _host_problem(value)
        if problem:
            self.fail(problem, table, index, key)
        return value

    def check_user(self, value: str, table: str, index: int | None, key: str) -> str:
        problem = _user_problem(value)
        if problem:
            self.fail(problem, table, index, key)
        return value

    def get_table(self, data: dict[str, object], key: str) -> dict[str, object] | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, dict):
            self.fail(f"expected a table [{key}], got {_type_name(value)}.", "", None, key)
        return value

    def get_array(self, data: dict[str, object], key: str) -> list[dict[str, object]]:
        if key not in data:
            return []
        value = data[key]
        if isinstance(value, dict):
            self.fail(f"write [[{key}]] (an array of tables, one per entry), not [{key}].", key, None, None)
        if not isinstance(value, list):
            self.fail(f"expected [[{key}]] tables, got {_type_name(value)}.", "", None, key)
        for number, item in enumerate(value, start=1):
            if not isinstance(item, dict):
                self.fail(f"expected a table, got {_type_name(item)}. Use [[{key}]] headers.", key, number)
        return value

    # -- sections

    def gateway(self, data: dict[str, object]) -> Gateway:
        table = self.get_table(data, "gateway")
        if table is None:
            raise ProfileError(
                'missing [gateway] table. Add one with at least host = "user@workstation".',
                path=self.path,
                key="gateway",
                line=None,
            )
        self.check_keys(table, _GATEWAY_KEYS, "gateway", None)
        jump_text = self.get_str(table, "jump", "gateway")
        jump: tuple[SshTarget, ...] = ()
        if jump_text is not None:
            jump = tuple(self.target(part, "jump") for part in jump_text.split(","))
        host_text = self.get_str(table, "host", "gateway", required=True)
        assert host_text is not None
        host = self.target(host_text, "host")

        ssh_config: Path | None = None
        config_text = self.get_str(table, "ssh_config", "gateway")
        if config_text is not None:
            ssh_config = self.existing_path(config_text, "ssh_config")

        method_text = self.get_str(table, "method", "gateway") or DEFAULT_METHOD
        if method_text not in METHODS:
            import difflib

            close = difflib.get_close_matches(method_text, METHODS, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            self.fail(
                f"{method_text!r} is not a method.{hint} Use one of: {', '.join(METHODS)}.",
                "gateway",
                None,
                "method",
            )
        method = next(m for m in METHODS if m == method_text)

        socks_port = self.get_port(table, "socks_port", "gateway", None, DEFAULT_SOCKS_PORT)
        ecflow_user = self.get_str(table, "ecflow_user", "gateway")
        if ecflow_user is not None:
            self.check_user(ecflow_user, "gateway", None, "ecflow_user")
        login = self.get_str(table, "login", "gateway")
        if login is not None and any(ch in login for ch in "\0\n\r"):
            self.fail("must be one line (a command with its arguments).", "gateway", None, "login")
        warn_before = self.duration(table)
        system_hosts = table.get("system_hosts", False)
        if not isinstance(system_hosts, bool):
            self.fail(
                f"expected true or false, got {_type_name(system_hosts)} ({_short(system_hosts)}).",
                "gateway",
                None,
                "system_hosts",
            )
        return Gateway(
            jump=jump,
            host=host,
            ssh_config=ssh_config,
            method=method,
            socks_port=socks_port,
            ecflow_user=ecflow_user,
            login=login,
            warn_before=warn_before,
            system_hosts=system_hosts,
        )

    def target(self, text: str, key: str) -> SshTarget:
        try:
            return parse_target(text, f"gateway.{key}")
        except ProfileError as exc:
            self.fail(exc.message, "gateway", None, key)

    def existing_path(self, text: str, key: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_absolute():
            # Relative to the profile, not to wherever the command happens to be run from.
            path = self.base_dir / path
        if not path.exists():
            self.fail(f"{display_path(path)} does not exist. Fix the path or remove the key.", "gateway", None, key)
        if not path.is_file():
            self.fail(f"{display_path(path)} is not a file.", "gateway", None, key)
        return path

    def duration(self, table: dict[str, object]) -> float:
        if "warn_before" not in table:
            return DEFAULT_WARN_BEFORE
        value = table["warn_before"]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(f'expected a duration like "30m", got {_type_name(value)}.', "gateway", None, "warn_before")
        if isinstance(value, str):
            match = _DURATION_RE.fullmatch(value)
            if not match:
                self.fail(
                    f'{value!r} is not a duration. Write a number with s, m or h, like "30m" or "2h".',
                    "gateway",
                    None,
                    "warn_before",
                )
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        else:
            seconds = float(value)
        if seconds < 0 or seconds != seconds or seconds > 7 * 86400:
            self.fail(f"{value!r} is out of range (0 to 168h).", "gateway", None, "warn_before")
        return seconds

    def servers(self, data: dict[str, object], gateway: Gateway) -> tuple[Server, ...]:
        entries = self.get_array(data, "server")
        if not entries:
            raise ProfileError(
                'no [[server]] entries. Add at least one: [[server]] name = "..." host = "..." port = 4141',
                path=self.path,
                key="server",
                line=None,
            )
        servers: list[Server] = []
        names: dict[str, int] = {}
        endpoints: dict[tuple[str, int], int] = {}
        for index, entry in enumerate(entries, start=1):
            self.check_keys(entry, _SERVER_KEYS, "server", index)
            name = self.get_str(entry, "name", "server", index, required=True)
            assert name is not None
            problem = _name_problem(name)
            if problem:
                self.fail(problem, "server", index, "name")
            if name in names:
                self.fail(
                    f"{name!r} is already the name of server[{names[name]}]. Server names must be unique.",
                    "server",
                    index,
                    "name",
                )
            names[name] = index
            host, port = self.endpoint(entry, "server", index, None, endpoints, clash_key="port")
            ecflow_user = self.get_str(entry, "ecflow_user", "server", index)
            if ecflow_user is not None:
                self.check_user(ecflow_user, "server", index, "ecflow_user")
            custom_user = self.get_str(entry, "custom_user", "server", index)
            if custom_user is not None:
                self.check_user(custom_user, "server", index, "custom_user")
            password = self.password(entry, index, custom_user)
            servers.append(
                Server(
                    name=name,
                    host=host,
                    port=port,
                    ecflow_user=ecflow_user if ecflow_user is not None else gateway.ecflow_user,
                    custom_user=custom_user,
                    password=password,
                )
            )
        return tuple(servers)

    def password(self, entry: dict[str, object], index: int, custom_user: str | None) -> PasswordSource | None:
        text = self.get_str(entry, "password", "server", index, secret=True)
        if text is None:
            return None
        if custom_user is None:
            self.fail(
                'a password is only used with a custom user. Add custom_user = "..." or remove password.',
                "server",
                index,
                "password",
            )
        kind, sep, ref = text.partition(":")
        # Nothing of the value is echoed: a user who wrote the password itself must not see it in a log.
        if not sep or kind not in PASSWORD_KINDS:
            self.fail(f"unknown password scheme: {_PASSWORD_HELP}.", "server", index, "password")
        ref = ref.strip()
        if ref == "":
            self.fail(f"nothing after {kind + ':'!r}: {_PASSWORD_HELP}.", "server", index, "password")
        if kind == "env" and not _ENV_NAME_RE.fullmatch(ref):
            self.fail(
                "env: needs an environment variable name (letters, digits, _), like env:ECFLOW_PASSWORD.",
                "server",
                index,
                "password",
            )
        if kind == "file":
            path = Path(ref).expanduser()
            if not path.is_absolute():
                path = self.base_dir / path
            ref = str(path)
            self.check_password_file(path, index)
        scheme = next(k for k in PASSWORD_KINDS if k == kind)
        return PasswordSource(kind=scheme, ref=ref, username=custom_user)

    def check_password_file(self, path: Path, index: int) -> None:
        # A missing file is left to read() (only the server that needs it fails), but a file others can read
        # is a leak now: refuse the profile so that it is fixed at once.
        try:
            info = path.stat()
        except OSError:
            return
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
            self.fail(
                f"the password file {display_path(path)} can be read by others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}). Run: chmod 600 {display_path(path)}",
                "server",
                index,
                "password",
            )

    def logservers(self, data: dict[str, object]) -> tuple[LogServer, ...]:
        result: list[LogServer] = []
        endpoints: dict[tuple[str, int], int] = {}
        for index, entry in enumerate(self.get_array(data, "logserver"), start=1):
            self.check_keys(entry, _LOGSERVER_KEYS, "logserver", index)
            host, port = self.endpoint(entry, "logserver", index, DEFAULT_LOGSERVER_PORT, endpoints, clash_key="host")
            result.append(LogServer(host=host, port=port))
        return tuple(result)

    def profile(self, data: dict[str, object]) -> Profile:
        self.check_keys(data, _TOP_KEYS, "", None)
        gateway = self.gateway(data)
        servers = self.servers(data, gateway)
        logservers = self.logservers(data)
        return Profile(path=self.path, gateway=gateway, servers=servers, logservers=logservers)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _short(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _host_problem(value: str) -> str | None:
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


def _user_problem(value: str) -> str | None:
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


def _name_problem(value: str) -> str | None:
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


# ---------------------------------------------------------------------------------------- public functions


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
        problem = _user_problem(user)
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
    problem = _host_problem(value)
    if problem:
        fail(problem)
    return SshTarget(user=user, host=value, port=port)


def default_profile_path() -> Path:
    """$ECFLOW_REMOTE_PROFILE if set, else profile.toml in the user's config directory."""
    env = os.environ.get("ECFLOW_REMOTE_PROFILE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("ecflow-remote")) / "profile.toml"


def _toml_position(exc: Exception) -> tuple[int | None, str]:
    # Python 3.11's TOMLDecodeError has no lineno attribute; its message ends with "(at line L, column C)".
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if match:
        return int(match.group(1)), f"{message[: match.start()]} (column {match.group(2)})"
    match = re.search(r"\s*\(at end of document\)\s*$", message)
    if match:
        return None, f"{message[: match.start()]} at the end of the file"
    return None, message


def _parse_text(text: str, path: Path) -> Profile:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, message = _toml_position(exc)
        raise ProfileError(
            f"TOML syntax error: {message}. Fix the line (see https://toml.io).", path=path, line=line
        ) from None
    return _Checker(path, text).profile(data)


def load_profile(path: Path | None = None) -> Profile:
    """Read and validate the profile at `path` (default: default_profile_path())."""
    path = Path(path).expanduser() if path is not None else default_profile_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ProfileError(
            "no profile here. Create one with `ecflow-remote init`, or point --profile "
            "(or $ECFLOW_REMOTE_PROFILE) at yours.",
            path=path,
        ) from None
    except OSError as exc:
        raise ProfileError(f"cannot read the profile: {exc.strerror}.", path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise ProfileError("is a directory, not a profile file. Give the path of the .toml file.", path=path)
    if not stat.S_ISREG(info.st_mode):
        raise ProfileError("is not a regular file.", path=path)
    if info.st_size > MAX_PROFILE_BYTES:
        raise ProfileError(f"is bigger than 1 MiB ({info.st_size} bytes): not a profile. Check the path.", path=path)
    try:
        with open(path, "rb") as handle:
            # Read one byte past the limit: the file may have grown since stat.
            raw = handle.read(MAX_PROFILE_BYTES + 1)
    except PermissionError:
        raise ProfileError(
            "cannot read the profile: permission denied. Fix its permissions (chmod 644).", path=path
        ) from None
    except OSError as exc:
        raise ProfileError(f"cannot read the profile: {exc.strerror}.", path=path) from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileError("is bigger than 1 MiB: not a profile. Check the path.", path=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ProfileError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}). Save the file as UTF-8.", path=path, line=line
        ) from None
    return _parse_text(text, path)


# --------------------------------------------------------------------------------------------- render / write


def _toml_string(value: str) -> str:
    """A TOML basic string: the escapes TOML defines, \\uXXXX for other control characters."""
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def render_profile(
    jump: str | None,
    host: str,
    servers: list[tuple[str, str, int]],
    logservers: list[tuple[str, int]],
    method: str,
    ssh_config: str | Path | None = None,
    ecflow_user: str | None = None,
) -> str:
    """A commented profile for these values; raises ProfileError if they would not load back."""
    q = _toml_string
    lines = [
        "# ecflow-remote profile: how to reach the Centre's ecFlow servers and log servers from here.",
        "# Edit freely; `ecflow-remote doctor` checks it. See the README: 'The profile', 'Which method'.",
        "# It never holds a password: a [[server]]'s `password` only says where to get it.",
        "",
        "[gateway]",
        "# The jump host(s), as `ssh -J` takes them: [user@]host[:port], comma-separated for several.",
        "# Remove the line for a direct connection to `host`.",
        f"jump = {q(jump)}" if jump else '# jump = "user@jump.example.int"',
        "# Your workstation at the Centre, the far end of the tunnel: [user@]host[:port].",
        f"host = {q(host)}",
        "# How ecflow_ui and the ecFlow clients reach the servers:",
        "#   local - one local port per server (ssh -L); ecflow_ui connects to localhost",
        "#   socks - a SOCKS proxy (ssh -D) that programs are pointed at",
        "#   hosts - the Centre's host names point to local addresses: real names, several log servers",
        f"method = {q(method)}",
        "# The local port of the SOCKS proxy (socks method).",
        f"# socks_port = {DEFAULT_SOCKS_PORT}",
    ]
    if ssh_config is not None:
        lines += ["# The ssh_config file to use (ssh -F).", f"ssh_config = {q(str(ssh_config))}"]
    else:
        lines += [
            "# The ssh_config file to use (ssh -F); ssh's default if unset.",
            '# ssh_config = "~/.ssh/config"',
        ]
    lines.append("# Your Centre user name, presented to ecFlow servers that allow only listed users.")
    lines.append(f"ecflow_user = {q(ecflow_user)}" if ecflow_user else '# ecflow_user = "user1"')
    lines += [
        "# The command that renews your SSH certificate, and how long before expiry to warn.",
        '# login = "tsh login --proxy=jump.example.int"',
        '# warn_before = "30m"',
        "# hosts/socks where launched programs cannot get a private hosts view (macOS): let ecflow-remote add a",
        "# marked block to /etc/hosts while the tunnel is up (backed up, removed by `down`; needs root).",
        "# system_hosts = true",
        "",
        "# One [[server]] per ecFlow server. `name` is how you call it (as in ecflow_ui) and must be unique.",
        "# Optional per server: ecflow_user (overrides the gateway's), and for password access control",
        '# custom_user = "..." with password = "env:VAR" | "file:~/path" (chmod 600) | "keyring:SERVICE".',
    ]
    if not servers:
        lines += ["# (none yet: add at least one)"]
    for name, server_host, port in servers:
        lines += ["", "[[server]]", f"name = {q(name)}", f"host = {q(server_host)}", f"port = {port}"]
    lines += [
        "",
        f"# Log servers that serve job output to ecflow_ui (port {DEFAULT_LOGSERVER_PORT} unless given).",
        "# With the local method only one log server can be reached.",
    ]
    if not logservers:
        lines += ["# [[logserver]]", '# host = "logserver1"']
    for log_host, log_port in logservers:
        lines += ["", "[[logserver]]", f"host = {q(log_host)}"]
        if log_port != DEFAULT_LOGSERVER_PORT:
            lines.append(f"port = {log_port}")
    text = "\n".join(lines) + "\n"
    # Whatever was given must load back: fail here, naming the key, rather than write a broken file.
    try:
        _parse_text(text, Path("profile.toml"))
    except ProfileError as exc:
        # The rendered text's lines mean nothing to the caller; the key names the offending argument.
        raise ProfileError(exc.message, key=exc.key) from None
    return text


def write_new_profile(path: Path, text: str) -> None:
    """Write a new profile atomically (mode 0644); ProfileError if a file is already there."""
    import tempfile

    path = Path(path).expanduser()
    if os.path.lexists(path):
        raise ProfileError(
            "a profile already exists here; it was left as it is. Edit it, or write the new one elsewhere "
            "with --profile PATH.",
            path=path,
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ProfileError(f"cannot create the profile: {exc.strerror}.", path=path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # No secret is ever in a profile; 0644 whatever the umask, as a config file is expected to be.
        os.chmod(tmp_name, 0o644)
        try:
            # link() fails if the name exists: no clobbering even if a file appeared since the check above.
            os.link(tmp_name, path)
        except FileExistsError:
            raise ProfileError(
                "a profile appeared here meanwhile; it was left as it is. Use --profile PATH for yours.",
                path=path,
            ) from None
        except OSError:
            # Filesystems without hard links: rename, still atomic, after a last check.
            if os.path.lexists(path):
                raise ProfileError("a profile already exists here; it was left as it is.", path=path) from None
            os.replace(tmp_name, path)
    except OSError as exc:
        raise ProfileError(f"cannot write the profile: {exc.strerror}.", path=path) from None
    finally:
        if os.path.lexists(tmp_name):
            os.unlink(tmp_name)
