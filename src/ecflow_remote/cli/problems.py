"""Errors nobody raised on purpose (the machine's set-up, a bug) as one line saying what to do, never a traceback."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path

from ecflow_remote.errors import EcflowRemoteError, RunDirError, display_path

DEBUG_VARIABLE = "ECFLOW_REMOTE_DEBUG"
# Where the tool's own paths come from: naming the variable tells a user which setting to change.
PATH_VARIABLES = ("ECFLOW_REMOTE_RUNTIME_DIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "TMPDIR", "HOME")
EXIT_FAILURE = 1  # an error raised on purpose: it says what happened and what to do
EXIT_ENVIRONMENT = 2  # the machine's set-up: a path, a permission, a full disk
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug of ecflow-remote's own


def debugging(environ: Mapping[str, str] | None = None) -> bool:
    """ECFLOW_REMOTE_DEBUG=1 (any value but empty or 0): let Python print the traceback, for a bug report."""
    value = (os.environ if environ is None else environ).get(DEBUG_VARIABLE, "")
    return value not in ("", "0")


# The exit code of an error raised on purpose, by its kind, most specific first; any other kind: EXIT_FAILURE.
EXIT_CODES: tuple[tuple[type[EcflowRemoteError], int], ...] = (
    (RunDirError, EXIT_ENVIRONMENT),  # a run directory that cannot be used safely: the machine's set-up, as an OSError
)


def exit_code(e: EcflowRemoteError) -> int:
    """The command's exit code for an error ecflow-remote raised on purpose."""
    return next((code for kind, code in EXIT_CODES if isinstance(e, kind)), EXIT_FAILURE)


def _owner(path: Path) -> int | None:
    """The owner of `path`, or of its nearest existing parent (the one that decides whether it can be made)."""
    for candidate in (path, *path.parents):
        try:
            return candidate.lstat().st_uid
        except OSError:
            continue
    return None


def _account(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _source(path: str, environ: Mapping[str, str]) -> str:
    """Which variable the path comes from, when one does: ' (from $XDG_RUNTIME_DIR)'."""
    for name in PATH_VARIABLES:
        value = environ.get(name, "")
        if value and (path == value or path.startswith(value.rstrip("/") + "/")):
            return f" (from ${name})"
    return ""


def os_error_line(e: OSError, *, environ: Mapping[str, str] | None = None, uid: int | None = None) -> str:
    """One line for an OSError: the path (and the variable it comes from), what went wrong, what to do."""
    env = os.environ if environ is None else environ
    me = os.getuid() if uid is None else uid
    raw = e.filename if isinstance(e.filename, str) else None
    what = e.strerror or str(e) or type(e).__name__
    code = e.errno
    if raw is None:
        if isinstance(e, ConnectionError | TimeoutError):
            return f"{what}: a connection failed unexpectedly; try again (`ecflow-remote doctor` finds the broken link)"
        if code in (errno.ENOSPC, errno.EDQUOT):
            return f"{what}: the output could not be written: free some space, or write it elsewhere"
        return f"{what}: a system error; run again with {DEBUG_VARIABLE}=1 to see where it happened"
    where = display_path(Path(raw)) + _source(raw, env)
    if code in (errno.EACCES, errno.EPERM):
        owner = _owner(Path(raw))
        if owner is not None and owner != me:
            todo = f"it belongs to another account, {_account(owner)}: use a path of your own"
        else:
            todo = f"check its permissions (ls -ld {raw})"
    elif code == errno.ENOENT:
        todo = "check the path and the variables it comes from ($HOME, $XDG_CONFIG_HOME, $XDG_RUNTIME_DIR)"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        todo = "a part of the path is a file where a directory belongs: check the path and the variables it comes from"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        todo = "free some space on that file system"
    elif code == errno.EROFS:
        todo = "that file system is read-only: use a writable path"
    elif code == errno.ENAMETOOLONG:
        todo = "use a shorter path"
    else:
        todo = f"run again with {DEBUG_VARIABLE}=1 to see where it happened"
    return f"{where}: {what}: {todo}"


def internal_error_line(e: BaseException) -> str:
    """A bug: say so in one line, and how to get the traceback for a report."""
    text = str(e).splitlines()[0] if str(e) else ""
    return (
        f"internal error ({type(e).__name__}{': ' + text if text else ''}): run again with {DEBUG_VARIABLE}=1 for "
        "the traceback, and report it"
    )
