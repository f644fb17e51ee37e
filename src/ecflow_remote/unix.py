"""This process's account and children, as every layer asks about them: the login name, children that die with
their parent (Linux; elsewhere they are stopped by their parent's clean-up)."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import sys


def login_name(missing: str | None = None) -> str:
    """The user name ecflow_client sends by default: the login name of the real user id. For a uid without a
    passwd entry (some containers): `missing` when given, else the uid (ecFlow would fail too; it is the best hint)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid()) if missing is None else missing


def die_with_parent(parent: int | None = None) -> None:
    """Linux: ssh dies with the supervisor, even on kill -9 (no orphan holding the ports). `parent`: the pid that
    started it (os.getpid() before the fork), so a parent that died before prctl is noticed."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if parent is not None and os.getppid() != parent:
            os._exit(1)  # the parent died between fork and prctl: its signal will never come
