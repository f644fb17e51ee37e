"""The one place that reads custom users' passwords (env:, file:, keyring:), and its one failure rule.

The rule: a password that cannot be read is a warning naming the server and the cause (never the secret), and
requests to that server go without it: the server refuses them, and its refusal is what the user sees, beside
the warning. Every reader (the supervisor, `status`, `suites`/`output`, doctor) calls read_passwords.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from ecflow_remote.errors import EcflowRemoteError, PasswordError, PasswordWarning, display_path
from ecflow_remote.profile.model import PasswordSource, Profile

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
    # O_NONBLOCK: a FIFO or device given by mistake must not hang the open; fstat on the opened descriptor checks
    # the very file that is read (no race between a check and the open).
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
