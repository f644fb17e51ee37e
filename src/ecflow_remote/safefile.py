"""Files written safely: private (0600 from the first byte) and atomic (readers see the old file or the new one)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file that is 0600 from its first byte (chmod after writing leaves a window)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_atomic(target: Path, text: str, mode: int = 0o644, like: Path | None = None) -> None:
    """Write `text` to `target` all at once: a temp file beside it, synced, renamed over it. With `like`, the new
    file takes that file's mode and owner (PermissionError if the owner cannot be kept); a failure leaves the old
    file as it was."""
    st = like.stat() if like is not None else None
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".ecflow-remote.tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
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
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
