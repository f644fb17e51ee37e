"""Load a profile: read the TOML file and check it into the model, with errors that name the file, line and key."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Final, NoReturn, TypeVar

from ecflow_remote.errors import ProfileError, display_path
from ecflow_remote.profile.locate import Locator, toml_position
from ecflow_remote.profile.model import (
    DEFAULT_LOGSERVER_PORT,
    DEFAULT_METHOD,
    DEFAULT_SOCKS_PORT,
    DEFAULT_WARN_BEFORE,
    METHODS,
    PASSWORD_KINDS,
    PROTOCOLS,
    TRANSPORTS,
    Gateway,
    LogServer,
    PasswordSource,
    Profile,
    Server,
    SshTarget,
    host_problem,
    name_problem,
    parse_target,
    user_problem,
)
from ecflow_remote.profile.trust import login_problem, password_file_problem, read_profile, ssh_config_problem
from ecflow_remote.profile.uitable import check_ui
from ecflow_remote.profile.values import short, type_name
from ecflow_remote.profile.webtable import check_web

T = TypeVar("T", bound=str)

_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION_RE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*")
_DURATION_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}

_TOP_KEYS: Final = ("gateway", "server", "logserver", "ui", "web")
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
    "transport",
    "agent_python",
)
At = tuple[str, int | None]  # which table a value is in: ("gateway", None), or ("server", its index)
_GW: Final[At] = ("gateway", None)
_SERVER_KEYS: Final = ("name", "host", "port", "protocol", "ecflow_user", "custom_user", "password")
_LOGSERVER_KEYS: Final = ("host", "port")
_PASSWORD_HELP: Final = (
    'write where the password comes from: "env:VARIABLE", "file:~/path" or "keyring:SERVICE"'
    " — never the password itself"
)


class _Checker:
    """Validates the parsed TOML document into a Profile; the first problem raises ProfileError."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.locator = Locator(text)
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
                self.fail(f"expected a string, got {type_name(value)}: {_PASSWORD_HELP}.", table, index, key)
            self.fail(f"expected a string, got {type_name(value)} ({short(value)}). Quote it.", table, index, key)
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
                f"expected an integer TCP port, got {type_name(value)} ({short(value)}).{hint}",
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
        problem = host_problem(value)
        if problem:
            self.fail(problem, table, index, key)
        return value

    def check_user(self, value: str, table: str, index: int | None, key: str) -> str:
        problem = user_problem(value)
        if problem:
            self.fail(problem, table, index, key)
        return value

    def get_table(self, data: dict[str, object], key: str) -> dict[str, object] | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, dict):
            self.fail(f"expected a table [{key}], got {type_name(value)}.", "", None, key)
        return value

    def get_array(self, data: dict[str, object], key: str) -> list[dict[str, object]]:
        if key not in data:
            return []
        value = data[key]
        if isinstance(value, dict):
            self.fail(f"write [[{key}]] (an array of tables, one per entry), not [{key}].", key, None, None)
        if not isinstance(value, list):
            self.fail(f"expected [[{key}]] tables, got {type_name(value)}.", "", None, key)
        for number, item in enumerate(value, start=1):
            if not isinstance(item, dict):
                self.fail(f"expected a table, got {type_name(item)}. Use [[{key}]] headers.", key, number)
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

        method = self.choice(table, "method", METHODS, DEFAULT_METHOD)
        socks_port = self.get_port(table, "socks_port", "gateway", None, DEFAULT_SOCKS_PORT)
        ecflow_user = self.get_str(table, "ecflow_user", "gateway")
        if ecflow_user is not None:
            self.check_user(ecflow_user, "gateway", None, "ecflow_user")
        login = self.get_str(table, "login", "gateway")
        if login is not None and (problem := login_problem(login)):
            self.fail(problem, "gateway", None, "login")
        warn_before = self.duration(table)
        system_hosts = table.get("system_hosts", False)
        if not isinstance(system_hosts, bool):
            got = f"{type_name(system_hosts)} ({short(system_hosts)})"
            self.fail(f"expected true or false, got {got}.", "gateway", None, "system_hosts")
        auto = " (auto: the far-side agent where the workstation has python3 >= 3.6, else plain OpenSSH forwards)"
        transport = self.choice(table, "transport", TRANSPORTS, "auto", auto)
        agent_python = self.get_str(table, "agent_python", "gateway")
        if agent_python is not None and not re.fullmatch(r"/[A-Za-z0-9_./+-]*", agent_python):
            why = 'the absolute path of a python3 on the workstation, like "/usr/bin/python3" (letters, digits, ./_+-).'
            self.fail(why, "gateway", None, "agent_python")
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
            transport=transport,
            agent_python=agent_python,
        )

    def choice(
        self, table: dict[str, object], key: str, choices: tuple[T, ...], default: T, note: str = "", at: At = _GW
    ) -> T:
        """`key` of `at` (the gateway, or ("server", index)): one of `choices`, with a did-you-mean for a near miss."""
        where, index = at
        text = self.get_str(table, key, where, index) or default
        for choice in choices:
            if choice == text:
                return choice
        close = difflib.get_close_matches(text, [str(c) for c in choices], n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        options = ", ".join(str(c) for c in choices)
        self.fail(f"{text!r} is not a {key}.{hint} Use one of: {options}{note}.", where, index, key)

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
        if problem := ssh_config_problem(path):
            self.fail(f"{display_path(path)} {problem}", "gateway", None, key)
        return path

    def duration(self, table: dict[str, object]) -> float:
        if "warn_before" not in table:
            return DEFAULT_WARN_BEFORE
        value = table["warn_before"]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(f'expected a duration like "30m", got {type_name(value)}.', "gateway", None, "warn_before")
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
            problem = name_problem(name)
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
                    protocol=self.choice(entry, "protocol", PROTOCOLS, "plain", at=("server", index)),
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
        # A missing file is left to read() (only the server that needs it fails, named), but a file others can
        # read, own or swap is a leak now: refuse the profile so that it is fixed at once.
        if problem := password_file_problem(path):
            self.fail(problem, "server", index, "password")

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
        ui = check_ui(self, data)
        web = check_web(self, data)
        return Profile(path=self.path, gateway=gateway, servers=servers, logservers=logservers, ui=ui, web=web)


def default_profile_path() -> Path:
    """$ECFLOW_REMOTE_PROFILE if set, else profile.toml in the user's config directory."""
    env = os.environ.get("ECFLOW_REMOTE_PROFILE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("ecflow-remote")) / "profile.toml"


def parse_text(text: str, path: Path) -> Profile:
    """The profile in `text` (read from `path`, which errors name); ProfileError at the first problem."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, message = toml_position(exc)
        raise ProfileError(
            f"TOML syntax error: {message}. Fix the line (see https://toml.io).", path=path, line=line
        ) from None
    return _Checker(path, text).profile(data)


def load_profile(path: Path | None = None) -> Profile:
    """Read and validate the profile at `path` (default: default_profile_path())."""
    path = Path(path).expanduser() if path is not None else default_profile_path()
    # One open, checked on its descriptor, in directories no other account can change: nothing can swap the
    # profile between the check and the read (its `login` runs commands).
    raw = read_profile(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ProfileError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}). Save the file as UTF-8.", path=path, line=line
        ) from None
    return parse_text(text, path)
