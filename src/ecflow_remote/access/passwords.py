"""The one place that reads custom users' passwords (env:, file:, keyring:), and its one failure rule.

The rule: a password that cannot be read is a warning naming the server and the cause (never the secret), and
requests to that server go without it: the server refuses them, and its refusal is what the user sees, beside
the warning. Every reader (the supervisor, `status`, `suites`/`output`, doctor) calls read_passwords.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Final

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


def read_passwords_warning(profile: Profile, servers: Iterable[str] | None = None) -> dict[str, str]:
    """read_passwords for a one-shot command: each warning is issued as a PasswordWarning, which the command line
    prints (and a library caller may catch or filter)."""
    passwords, problems = read_passwords(profile, servers)
    for problem in problems:
        warnings.warn(problem, PasswordWarning, stacklevel=2)
    return passwords


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
    value = os.environ.get(name)
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
