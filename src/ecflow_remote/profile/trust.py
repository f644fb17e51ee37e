"""Whether a file that makes ecflow-remote run commands (the profile's `login`, an ssh_config's ProxyCommand) can
be trusted: owned by the user (or root) and writable by nobody else, as OpenSSH asks of ~/.ssh/config."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from ecflow_remote.errors import display_path


def untrusted_problem(path: Path, info: os.stat_result | None = None, what: str = "") -> str | None:
    """Why another account could change what `path` makes ecflow-remote run, with the fix; None if it cannot."""
    try:
        st = info if info is not None else os.stat(path)
    except OSError:
        return None  # unreadable or gone: the reader that opens it says so in its own words
    shown = display_path(path)
    runs = f"{what} in it runs commands as you" if what else "it makes ecflow-remote run commands as you"
    if st.st_uid not in (os.getuid(), 0):
        return (
            f"belongs to another account (uid {st.st_uid}), and {runs}: use a copy of your own "
            f"(cp {shown} ~/{path.name} && chmod 600 ~/{path.name})"
        )
    if st.st_mode & 0o022:
        return f"can be changed by other accounts (mode {stat.S_IMODE(st.st_mode):04o}), and {runs}: chmod go-w {shown}"
    return None


def login_problem(login: str) -> str | None:
    """Why `login` is not a command ecflow-remote can run (it is split as a shell would, without one)."""
    if any(ch in login for ch in "\0\n\r"):
        return "must be one line (a command with its arguments)."
    try:
        words = shlex.split(login)
    except ValueError as exc:
        return f"cannot be split into a command and its arguments ({exc}): close the quote, or remove it."
    if not words:
        return "is empty: give the command that renews your certificate (e.g. tsh login), or remove the key."
    return None
