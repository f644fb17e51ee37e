"""The one place that reads custom users' passwords (env:, file:, keyring:), and its one failure rule.

The rule: a password that cannot be read is a warning naming the server and the cause (never the secret), and
requests to that server go without it: the server refuses them, and its refusal is what the user sees, beside
the warning. Every reader (the supervisor, `status`, `suites`/`output`, doctor) calls read_passwords.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Final

from ecflow_remote.errors import EcflowRemoteError, PasswordError, PasswordWarning, display_path
from ecflow_remote.profile.model import PasswordSource, Profile
from ecflow_remote.profile.trust import password_refusal
from ecflow_remote.safepath import FileProblem, read_checked

# A password file is a few bytes; a cap keeps a mistaken path (a log, a device) from being slurped.
MAX_PASSWORD_BYTES: Final = 64 * 1024


def read_passwords(profile: Profile, servers: Iterable[str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The password of every server that has one (or of those named in `servers`), by server name, and a
    warning for each that could not be read: `server NAME: why`, never containing a secret."""
    wanted = None if servers is None else set(servers)
    passwords: dict[str, str] = {}
    problems: list[str] = []
    for server in profile.servers:
        if server.password is None or (wanted is not None and server.name not in wanted):
            continue
        try:
            passwords[server.name] = read_password(server.password)
        except EcflowRemoteError as exc:
            problems.append(f"server {server.name}: password not read, its requests go without one: {exc}")
    return passwords, problems


def read_passwords_warned(
    profile: Profile, servers: Iterable[str] | None = None, *, stacklevel: int = 1
) -> tuple[dict[str, str], list[str]]:
    """read_passwords, each problem also issued as a PasswordWarning, which the command line prints (and a library
    caller may catch or filter). `stacklevel` as warnings.warn's, counted from the caller."""
    passwords, problems = read_passwords(profile, servers)
    for problem in problems:
        warnings.warn(problem, PasswordWarning, stacklevel=stacklevel + 1)
    return passwords, problems


# The profile's env: variables as the process that started this one handed them over (hand_over / take_over): a
# tunnel's own processes (the supervisor, the log-server finder) run without them in their environment, which
# /proc/PID/environ would show to the same user's other programs for the process's whole life.
_HANDED: dict[str, str] = {}


def variables_of(profile: Profile, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The profile's password variables that are set (in `environ`, default this process's), by name."""
    environ = os.environ if environ is None else environ
    names = {s.password.ref for s in profile.servers if s.password is not None and s.password.kind == "env"}
    return {name: environ[name] for name in sorted(names) if name in environ}


def hand_over(profile: Profile, stream: IO[bytes]) -> None:
    """Write the profile's password variables as one JSON line to a child's pipe (the child calls take_over first),
    so that the child can start without them in its environment (transport.ssh.ssh_environ)."""
    stream.write(json.dumps(variables_of(profile) | _HANDED).encode() + b"\n")
    stream.flush()


def take_over(stream: IO[bytes]) -> None:
    """Read the line hand_over wrote: env: sources read from it, before this process's environment. A line that is
    not a JSON object of strings hands over nothing (the variables then count as unset)."""
    line = stream.readline(MAX_PASSWORD_BYTES)
    try:
        got = json.loads(line) if line.strip() else {}
    except ValueError:
        got = {}
    if isinstance(got, dict):
        _HANDED.update({k: v for k, v in got.items() if isinstance(k, str) and isinstance(v, str)})


def read_password(source: PasswordSource) -> str:
    """The password `source` points at; PasswordError (without the secret in it) if it cannot be had."""
    if source.kind == "env":
        return _one_word(_read_env(source.ref), f"the password variable ${source.ref}")
    if source.kind == "file":
        path = Path(source.ref).expanduser()
        return _one_word(_read_file(path), f"the password file {display_path(path)}")
    return _one_word(_read_keyring(source.ref, source.username or source.ref), f"the keyring's {source.ref!r}")


def _one_word(password: str, where: str) -> str:
    # ecFlow's password files (the server's ECF_CUSTOM_PASSWD) are `user host port password` split at whitespace,
    # with `#` starting a comment (ACore PasswdFile::load), so such a password cannot be the server's: refused here,
    # with the cause, rather than sent and refused without one (no encoding exists that ecFlow would decode).
    if any(ch.isspace() for ch in password):
        what = "a space, tab or line break"
    elif "#" in password:
        what = "'#' (a comment there)"
    else:
        return password
    raise PasswordError(
        f"{where} holds {what}, which an ecFlow password file cannot: set it to the password the server knows, "
        "alone on its line"
    )


def _read_env(name: str) -> str:
    value = _HANDED.get(name, os.environ.get(name))
    if value is None:
        raise PasswordError(
            f"the password variable ${name} is not set. Export it (export {name}=...) in the shell that runs "
            "ecflow-remote."
        )
    if value == "":
        raise PasswordError(f"the password variable ${name} is empty. Set it to the password.")
    return value


def _read_file(path: Path) -> str:
    shown = display_path(path)
    # One open (O_NOFOLLOW: a link is refused) checked on its descriptor, in directories no other account can
    # change: the file read is the file checked, yours alone (password_file_problem's rules, told the same way).
    got = read_checked(path, MAX_PASSWORD_BYTES, private=True, follow=False)
    if isinstance(got, FileProblem):
        if got.kind == "missing":
            raise PasswordError(f"the password file {shown} does not exist. Create it (chmod 600).")
        if got.kind == "big":
            raise PasswordError(f"the password file {shown} {got.text}: is it the right file?")
        if got.kind in ("denied", "error"):
            raise PasswordError(f"the password file {shown} {got.text}.")
        raise PasswordError(password_refusal(got, path))
    try:
        text = got.decode("utf-8")
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


def _read_keyring(service: str, username: str) -> str:
    try:
        import keyring
    except ImportError:
        raise PasswordError(
            f"the password is in the keyring (service {service!r}) but the keyring library is not installed. "
            "Install it: pip install 'ecflow-remote[keyring]'."
        ) from None
    try:
        value = keyring.get_password(service, username)
    except Exception as exc:  # any backend failure: no keyring daemon, locked store, ...
        raise PasswordError(
            f"the keyring could not be read (service {service!r}, user {username!r}): {type(exc).__name__}: {exc}"
        ) from None
    if not value:
        raise PasswordError(
            f"the keyring has no password for service {service!r}, user {username!r}. "
            f"Store it: keyring set {service} {username}"
        )
    return str(value)
