"""Files read safely, by OpenSSH's rules: opened once, checked on the open file, and every directory above them
owned by you or root and writable by no one else (safe_path), so that no other account can swap what is read."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)

Kind = Literal["missing", "denied", "link", "type", "owner", "writable", "readable", "directory", "big", "error"]


@dataclass(frozen=True)
class FileProblem:
    """Why a file is not read: `text` follows the file's name in a message ("belongs to nobody (uid 65534)");
    `where` is the file or directory at fault, `uid` its owner."""

    kind: Kind
    text: str
    where: Path
    uid: int | None = None


def account(uid: int) -> str:
    """`name (uid N)` for a local account, `uid N` when it has no name."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _trusted(uid: int) -> bool:
    return uid in (os.getuid(), 0)


def _home() -> str | None:
    try:
        import pwd

        return os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError):
        return None


def _walk_up(file: str, home: str | None) -> FileProblem | None:
    """OpenSSH's safe_path on the directories above `file` (absolute): each owned by you or root and not
    group/other-writable, up to / or your home. One relaxation: a sticky directory (/tmp, mode 1777) may be
    writable by others when the entry in it is yours or root's, since the sticky bit keeps them from renaming or
    replacing that entry."""
    try:
        entry = os.lstat(file)
    except OSError:
        return None  # gone or unreadable: the open that follows says so
    directory = os.path.dirname(file)
    while True:
        try:
            info = os.stat(directory)
        except OSError as exc:
            return FileProblem("error", f"cannot be checked: {directory}: {exc.strerror}", Path(directory))
        if not _trusted(info.st_uid):
            text = f"is in {directory}, which belongs to {account(info.st_uid)}"
            return FileProblem("directory", text, Path(directory), info.st_uid)
        sticky_ok = info.st_mode & stat.S_ISVTX and _trusted(entry.st_uid)
        if info.st_mode & 0o022 and not sticky_ok:
            mode = stat.S_IMODE(info.st_mode)
            text = f"is in {directory}, which other accounts can change (mode {mode:04o})"
            return FileProblem("directory", text, Path(directory), info.st_uid)
        parent = os.path.dirname(directory)
        if directory == home or parent == directory:
            return None
        entry = os.lstat(directory)
        directory = parent


def directories_problem(path: Path) -> FileProblem | None:
    """Why another account could replace `path` through a directory above it, else None: checked along the path
    as written (its symbolic links sit in those directories) and as resolved (where they lead)."""
    try:
        written = os.path.abspath(path)
    except FileNotFoundError:  # a relative path, and the working directory was removed: the open says so
        return None
    home = _home()
    return _walk_up(written, home) or _walk_up(os.path.realpath(written), home)


def file_problem(info: os.stat_result, where: Path, *, private: bool) -> FileProblem | None:
    """What is wrong with a file's own owner and mode: it must be yours (or root's, unless `private`) and
    writable by no one else; a `private` one (a secret) readable by no one else either."""
    if not stat.S_ISREG(info.st_mode):
        return FileProblem("type", "is not a regular file", where, info.st_uid)
    mode = stat.S_IMODE(info.st_mode)
    if private and info.st_uid != os.getuid():
        return FileProblem("owner", f"belongs to {account(info.st_uid)}, not to you", where, info.st_uid)
    if not _trusted(info.st_uid):
        return FileProblem("owner", f"belongs to {account(info.st_uid)}", where, info.st_uid)
    if private and info.st_mode & 0o077:
        return FileProblem("readable", f"can be read by others (mode {mode:04o})", where, info.st_uid)
    if info.st_mode & 0o022:
        return FileProblem("writable", f"can be changed by other accounts (mode {mode:04o})", where, info.st_uid)
    return None


def check_path(path: Path, *, private: bool = False) -> FileProblem | None:
    """Why `path` (a file another program reads later by its name, as ssh its -F config) is not safe to name,
    else None: its directories and the file itself checked as read_checked does."""
    if problem := directories_problem(path):
        return problem
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return FileProblem("missing", "does not exist", path)
    except OSError as exc:
        return FileProblem("error", f"cannot be read: {exc.strerror}", path)
    return file_problem(info, path, private=private)


def check_dir(path: Path) -> FileProblem | None:
    """Why the directory `path` (one that is copied or read whole, as ecflow_ui's config dir) is not safe to
    take from, else None: yours or root's, writable by no one else, in directories likewise (as check_path)."""
    if problem := directories_problem(path):
        return problem
    try:
        info = os.stat(path)
    except OSError:
        return None  # absent or unreadable: the reader says so
    if not _trusted(info.st_uid):
        return FileProblem("owner", f"belongs to {account(info.st_uid)}", path, info.st_uid)
    if info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        return FileProblem("writable", f"can be changed by other accounts (mode {mode:04o})", path, info.st_uid)
    return None


def read_checked(path: Path, limit: int, *, private: bool = False, follow: bool = True) -> bytes | FileProblem:
    """The bytes of `path` (at most `limit`, else a problem), or why it is not read. The file is opened once
    (O_NOFOLLOW on its resolved path, or on `path` itself when not `follow`: a symbolic link there is refused),
    checked on the open descriptor (file_problem) and read from it; the directories above it are checked first
    (directories_problem). O_NONBLOCK: a FIFO given by mistake does not hang the open."""
    if problem := directories_problem(path):
        return problem
    try:
        target = os.path.realpath(path) if follow else os.path.abspath(path)
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC)
    except FileNotFoundError:
        return FileProblem("missing", "does not exist", path)
    except PermissionError:
        owner = _lstat_uid(target)
        return FileProblem("denied", "cannot be read: permission denied", path, owner)
    except OSError as exc:
        if not follow and os.path.islink(target):
            return FileProblem("link", "is a symbolic link", path, _lstat_uid(target))
        return FileProblem("error", f"cannot be read: {exc.strerror}", path)
    try:
        info = os.fstat(fd)
        if problem := file_problem(info, path, private=private):
            return problem
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return FileProblem("big", f"is bigger than {limit} bytes", path, info.st_uid)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _lstat_uid(path: str) -> int | None:
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None
