"""The private hosts view (Linux): launched programs see the Centre's names on loopback, /etc/hosts untouched."""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ecflow_remote.plan import Plan

MARK = "# ecflow-remote"


def hosts_text(plan: Plan, base: str | None = None) -> str:
    """The machine's own hosts file plus the Centre's names on loopback: what launched programs see."""
    if base is None:
        try:
            base = Path("/etc/hosts").read_text()
        except OSError:
            base = "127.0.0.1\tlocalhost\n"
    lines = [f"{addr}\t{name}" for name, addr in plan.hosts.items()]
    return base.rstrip("\n") + f"\n{MARK} ({plan.method} method)\n" + "\n".join(lines) + "\n"


_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWUSER = 0x10000000
_MS_REC, _MS_PRIVATE, _MS_BIND = 0x4000, 1 << 18, 4096


def private_view(binds: Sequence[tuple[str, str]], hide: Sequence[str] = (), hostname: str | None = None) -> None:
    """In the child, before exec: a mount namespace of its own with `binds` (file over file) mounted, an
    empty tmpfs over each `hide` directory and, if given, a host name of its own (tests tell its requests apart).

    Root gets a plain mount namespace; anyone else a user namespace that maps their own uid to itself, so the
    program still runs as (and its ecFlow requests still name) the same user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS if uid == 0 else _CLONE_NEWNS | _CLONE_NEWUSER
    if hostname is not None:
        flags |= _CLONE_NEWUTS
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    if uid != 0:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    for source, target in binds:
        if libc.mount(source.encode(), target.encode(), None, _MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), f"bind mount {target}")
    for target in hide:
        if libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, b"mode=0755") != 0:
            raise OSError(ctypes.get_errno(), f"tmpfs over {target}")
    if hostname is not None and libc.sethostname(hostname.encode(), len(hostname.encode())) != 0:
        raise OSError(ctypes.get_errno(), "sethostname")


def private_view_available() -> bool:
    """Whether launched programs can get a private hosts view here: Linux, and unshare allowed (probed once).

    ECFLOW_REMOTE_PRIVATE_VIEW=0 pretends it is not (for tests of the system hosts file fallback only)."""
    forced = os.environ.get("ECFLOW_REMOTE_PRIVATE_VIEW")
    if forced is not None:
        return forced != "0"
    return _probe_private_view()


@functools.cache
def _probe_private_view() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import shutil

    true = shutil.which("true") or "/bin/true"
    try:
        done = subprocess.run(
            [true],
            preexec_fn=lambda: private_view(()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def no_view_message(plan: Plan) -> str:
    """Why run/ui cannot map the Centre's names here, and the two ways out."""
    return (
        f"the {plan.method} method maps the Centre's names ({', '.join(plan.hosts)}) for launched programs in a "
        "private hosts view, which needs Linux mount namespaces (not available here). Either use the local "
        "method (ecflow-remote down; ecflow-remote up --method local), or let ecflow-remote add a marked block "
        "to /etc/hosts while the tunnel is up: set system_hosts = true in the profile's [gateway] and run "
        "`ecflow-remote up` again (the file is root's: it prints the one sudo command if it cannot write it)"
    )
