"""Keep the Centre's host names off the machine's real resolver: a private mount view of /etc/resolv.conf."""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_MS_BIND = 4096
RESOLV_FILE = Path("/run/ecflow-remote-centre/resolv.conf")

RESOLV_CONF = "# ecflow-remote simulated Centre: no name ever leaves the machine\nnameserver 127.0.0.1\n"


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def isolate_resolver() -> None:
    """Move this process into its own mount namespace where /etc/resolv.conf points at 127.0.0.1.

    Every child inherits the view, so a Centre host name looked up by any test or demo program fails at once
    instead of reaching the machine's DNS server. Must be called before any thread starts (unshare(2) rule).
    """
    if is_resolver_isolated():
        return
    lib = libc()
    _check(lib.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private propagation: our bind mount must not leak back into the machine's own mount namespace.
    _check(lib.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    # A fixed, shared file rather than a temporary one: binding over a mount of a deleted file fails (ENOENT),
    # and launched programs bind their own views over /etc/resolv.conf.
    RESOLV_FILE.parent.mkdir(parents=True, exist_ok=True)
    if not is_resolver_isolated(RESOLV_FILE):
        RESOLV_FILE.write_text(RESOLV_CONF)
    os.chmod(RESOLV_FILE, 0o644)
    _check(lib.mount(str(RESOLV_FILE).encode(), b"/etc/resolv.conf", None, _MS_BIND, None), "bind mount resolv.conf")


def is_resolver_isolated(path: Path = Path("/etc/resolv.conf")) -> bool:
    try:
        return path.read_text() == RESOLV_CONF
    except OSError:
        return False


@contextlib.contextmanager
def private_runtime(prefix: str = "ecfr-bench-") -> Iterator[Path]:
    """A private ECFLOW_REMOTE_RUNTIME_DIR (0700) for the demo and the benches, removed afterwards with all in it;
    yields its parent, a scratch directory."""
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        rt = Path(d) / "rt"
        rt.mkdir(mode=0o700)
        before = os.environ.get("ECFLOW_REMOTE_RUNTIME_DIR")
        os.environ["ECFLOW_REMOTE_RUNTIME_DIR"] = str(rt)
        try:
            yield Path(d)
        finally:
            if before is None:
                os.environ.pop("ECFLOW_REMOTE_RUNTIME_DIR", None)
            else:
                os.environ["ECFLOW_REMOTE_RUNTIME_DIR"] = before
