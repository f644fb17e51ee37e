"""Write profiles with tomlkit: a new one with its explaining comments, and edits that keep the user's text."""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ecflow_remote.errors import ProfileError
from ecflow_remote.profile.load import parse_text
from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT, DEFAULT_SOCKS_PORT

if TYPE_CHECKING:
    from tomlkit import TOMLDocument
    from tomlkit.items import Table

# A scalar a profile key takes; None removes the key.
Value = str | int | float | bool | None

_HEADER = (
    "ecflow-remote profile: how to reach the Centre's ecFlow servers and log servers from here.",
    "Edit freely; `ecflow-remote doctor` checks it. See the README: 'The profile', 'Which method'.",
    "It never holds a password: a [[server]]'s `password` only says where to get it.",
)
_METHODS_HELP = (
    "How ecflow_ui and the ecFlow clients reach the servers:",
    "  local - one port on 127.0.0.1 per server and log server; ecflow_ui connects to localhost",
    "  socks - a SOCKS proxy on 127.0.0.1 (user and password made at each `up`) that programs are pointed at",
    "  hosts - the Centre's host names point to local addresses: real names, several log servers",
)
_GATEWAY_TAIL = (
    "The command that renews your SSH certificate, and how long before expiry to warn.",
    'login = "tsh login --proxy=jump.example.int"',
    'warn_before = "30m"',
    "hosts/socks where launched programs cannot get a private hosts view (macOS): let ecflow-remote add a",
    "marked block to /etc/hosts while the tunnel is up (backed up, removed by `down`; needs root).",
    "system_hosts = true",
    "What carries the connections: auto (the far-side agent, a small python3 program sent over ssh to the",
    "workstation; plain OpenSSH forwards where it has no python3), agent (never plain) or plain (never the agent).",
    'transport = "auto"',
    "The workstation's python3 for the agent (default: python3 on its PATH, else platform-python, /usr/bin/python3).",
    'agent_python = "/usr/bin/python3"',
)
_SERVERS_HELP = (
    "One [[server]] per ecFlow server. `name` is how you call it (as in ecflow_ui) and must be unique.",
    "Optional per server: ecflow_user (overrides the gateway's), and for password access control",
    'custom_user = "..." with password = "env:VAR" | "file:~/path" (chmod 600) | "keyring:SERVICE",',
    'and protocol = "plain" (default) | "ssl" (ECF_SSL; ~/.ecflowrc/ssl/<host>.<port>.crt or server.crt) | "http"',
    '| "https" (ecflow_server --http, 5.15 and later).',
)
_UI_HELP = (
    "ecflow_ui (`ecflow-remote ui`): the Centre's system server lists, files on your workstation (what",
    "ECFLOW_SYSTEM_SERVERS_LIST names there). Unset: the list your workstation's login environment names, if any;",
    "[] for none.",
)


def _comments(container: TOMLDocument | Table, *lines: str) -> None:
    import tomlkit

    for line in lines:
        container.add(tomlkit.comment(line))


def _gateway(jump: str | None, host: str, method: str, ssh_config: str | Path | None, ecflow_user: str | None) -> Table:
    import tomlkit

    table = tomlkit.table()
    _comments(
        table,
        "The jump host(s), as `ssh -J` takes them: [user@]host[:port], comma-separated for several.",
        "Remove the line for a direct connection to `host`.",
    )
    if jump:
        table.add("jump", jump)
    else:
        # Commented-out examples show a key the user may want without setting it.
        _comments(table, 'jump = "user@jump.example.int"')
    _comments(table, "Your workstation at the Centre, the far end of the tunnel: [user@]host[:port].")
    table.add("host", host)
    _comments(table, *_METHODS_HELP)
    table.add("method", method)
    _comments(table, "The local port of the SOCKS proxy (socks method).", f"socks_port = {DEFAULT_SOCKS_PORT}")
    if ssh_config is not None:
        _comments(table, "The ssh_config file to use (ssh -F).")
        table.add("ssh_config", str(ssh_config))
    else:
        _comments(table, "The ssh_config file to use (ssh -F); ssh's default if unset.", 'ssh_config = "~/.ssh/config"')
    _comments(table, "Your Centre user name, presented to ecFlow servers that allow only listed users.")
    if ecflow_user:
        table.add("ecflow_user", ecflow_user)
    else:
        _comments(table, 'ecflow_user = "user1"')
    _comments(table, *_GATEWAY_TAIL)
    return table


def render_profile(
    jump: str | None,
    host: str,
    servers: list[tuple[str, str, int]],
    logservers: list[tuple[str, int]],
    method: str,
    ssh_config: str | Path | None = None,
    ecflow_user: str | None = None,
    system_servers: list[str] | None = None,
    custom_users: Mapping[str, tuple[str, str | None]] | None = None,
) -> str:
    """A commented profile for these values; raises ProfileError if they would not load back. `custom_users`:
    server name -> (custom user, password source or None)."""
    import tomlkit

    doc = tomlkit.document()
    _comments(doc, *_HEADER)
    doc.add(tomlkit.nl())
    doc.add("gateway", _gateway(jump, host, method, ssh_config, ecflow_user))
    doc.add(tomlkit.nl())
    _comments(doc, *_SERVERS_HELP)
    if not servers:
        _comments(doc, "(none yet: add at least one)")
    else:
        entries = tomlkit.aot()
        for name, server_host, port in servers:
            entry = tomlkit.table().add("name", name).add("host", server_host).add("port", port)
            custom_user, password = (custom_users or {}).get(name, (None, None))
            if custom_user:
                entry.add("custom_user", custom_user)
            if password:
                entry.add("password", password)
            entries.append(entry)
        doc.add(tomlkit.nl())
        doc.add("server", entries)
    doc.add(tomlkit.nl())
    _comments(
        doc,
        f"Log servers that serve job output (port {DEFAULT_LOGSERVER_PORT} unless given). Optional: the tunnel finds",
        "those your suites name (ECF_LOGHOST/ECF_LOGPORT); name one here that no suite names yet.",
    )
    if not logservers:
        _comments(doc, "[[logserver]]", 'host = "logserver1"')
    else:
        logs = tomlkit.aot()
        for log_host, log_port in logservers:
            entry = tomlkit.table().add("host", log_host)
            if log_port != DEFAULT_LOGSERVER_PORT:
                entry.add("port", log_port)
            logs.append(entry)
        doc.add(tomlkit.nl())
        doc.add("logserver", logs)
    doc.add(tomlkit.nl())
    _comments(doc, *_UI_HELP)
    if system_servers is None:
        _comments(doc, "[ui]", 'system_servers = ["/path/on/your/workstation/servers"]')
    else:
        doc.add("ui", tomlkit.table().add("system_servers", system_servers))
    text = tomlkit.dumps(doc)
    # Whatever was given must load back: fail here, naming the key, rather than write a broken file.
    try:
        parse_text(text, Path("profile.toml"))
    except ProfileError as exc:
        # The rendered text's lines mean nothing to the caller; the key names the offending argument.
        raise ProfileError(exc.message, key=exc.key) from None
    return text


# --------------------------------------------------------------------------------------------- edits


def set_value(text: str, table: str, key: str, value: Value, *, index: int | None = None) -> str:
    """`text` with `key` of [table] (or of the index-th [[table]], from 1) set to `value`, or removed if None.

    Everything else (the user's comments, order, spacing and quoting) stays as written. The result is not
    checked here: update_profile checks it before writing.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ProfileError(f"TOML syntax error: {exc}. Fix the file first (see https://toml.io).") from None
    label = table if index is None else f"{table}[{index}]"
    section = doc.get(table)
    if index is not None:
        if not isinstance(section, list) or not 1 <= index <= len(section):
            raise ProfileError(f"there is no {label} to change.", key=label)
        section = section[index - 1]
    elif section is None:
        if value is None:
            return text
        section = tomlkit.table()
        doc.add(table, section)
    if not isinstance(section, dict):
        raise ProfileError(f"{label} is not a table.", key=label)
    if value is None:
        section.pop(key, None)
        return tomlkit.dumps(doc)
    new_key = key not in section and bool(section)
    section[key] = value
    result = tomlkit.dumps(doc)
    return _after_last_key(text, result) if new_key else result


def _after_last_key(before: str, after: str) -> str:
    """`after` (= `before` with one key added to a table) with the added lines moved up past the blank and
    comment lines that end the table, so the key follows the table's last key.

    tomlkit adds a key after those lines (from 0.15.3 on; before, only through a private method that 0.15.3
    removed), where a reader takes them for the next table's. Done on the text, from what the edit added, so it
    depends on no tomlkit internals: if the change is not one block of added lines it is kept as tomlkit made it
    (the key is in the right table either way).
    """
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    changes = [op for op in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(changes) != 1 or changes[0][0] != "insert":
        return after
    _, at, _, start, end = changes[0]
    added = new[start:end]
    if old and not old[-1].endswith("\n") and at == len(old):
        return after  # appended to a last line without a newline: nothing to move past
    top = at
    # Blank and comment lines only: the last key's own lines (a multi-line array's "]", a string's closing
    # quotes) are neither, so the walk stops at them or at the table's header.
    while top > 0 and (not old[top - 1].strip() or old[top - 1].lstrip().startswith("#")):
        top -= 1
    return "".join(old[:top] + added + old[top:])


def update_profile(path: Path, table: str, key: str, value: Value, *, index: int | None = None) -> None:
    """Change one key of the profile at `path` in place (see set_value), keeping its mode; the file is left as it
    was if the result would not load (ProfileError naming the key)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode & 0o7777
    except (OSError, UnicodeError) as exc:
        raise ProfileError(f"cannot read the profile: {getattr(exc, 'strerror', None) or exc}.", path=path) from None
    new_text = set_value(text, table, key, value, index=index)
    parse_text(new_text, path)  # ProfileError with the file, line and key of the problem
    with _staged(path, new_text, mode) as tmp_name:
        os.replace(tmp_name, path)


@contextlib.contextmanager
def _staged(path: Path, text: str, mode: int) -> Iterator[str]:
    """A synced temp file beside `path` holding `text` with `mode`, for the caller to rename or link over `path`
    (readers see the old file or the new one, never a part); gone afterwards, and OSError as ProfileError."""
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
        os.chmod(tmp_name, mode)
        yield tmp_name
    except OSError as exc:
        raise ProfileError(f"cannot write the profile: {exc.strerror}.", path=path) from None
    finally:
        if os.path.lexists(tmp_name):
            os.unlink(tmp_name)


def write_new_profile(path: Path, text: str) -> None:
    """Write a new profile atomically (mode 0644); ProfileError if a file is already there."""
    path = Path(path).expanduser()
    if os.path.lexists(path):
        raise ProfileError(
            "a profile already exists here; it was left as it is. Edit it, or write the new one elsewhere "
            "with --profile PATH.",
            path=path,
        )
    # No secret is ever in a profile; 0644 whatever the umask, as a config file is expected to be.
    with _staged(path, text, 0o644) as tmp_name:
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
