"""Files written safely: private (0600 from the first byte) and atomic (readers see the old file or the new one)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to a new file that has `mode` (0600) from its first byte (chmod after writing leaves a window).
    Whatever was at `path` is unlinked first, so a symbolic link put there is replaced, never followed."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS = {
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
}


def open_private(path: Path, mode: str) -> IO[Any]:
    """open(path, mode) for "wb", "ab" or "a+" that never follows a symbolic link at `path` (OSError ELOOP
    instead) and creates the file 0600: for the files of a run directory, which must never be a way to write
    elsewhere."""
    fd = os.open(path, _OPEN_FLAGS[mode] | _NOFOLLOW | _CLOEXEC, 0o600)
    return os.fdopen(fd, mode)


def write_atomic(
    target: Path, text: str | bytes, mode: int = 0o644, like: Path | None = None, *, durable: bool = True
) -> None:
    """Write `text` (UTF-8, or bytes as they are) to `target` all at once: a temp file beside it, synced, renamed
    over it. With `like`, the new file takes that file's mode and owner (PermissionError if the owner cannot be
    kept); a failure leaves the old file as it was. durable=False: readers still see the old or the new file whole,
    but nothing waits for the disk (a file rewritten all day that a reboot may lose)."""
    st = like.stat() if like is not None else None
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".ecflow-remote.tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else mode)
        if st is not None:
            tmp_st = tmp.stat()
            if (tmp_st.st_uid, tmp_st.st_gid) != (st.st_uid, st.st_gid):
                os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if not durable:
        return
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
