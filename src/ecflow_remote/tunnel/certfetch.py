"""A TLS server's certificate missing at home, fetched once from the workstation through the tunnel's ssh master."""

from __future__ import annotations

import shlex
import subprocess
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from ecflow_remote.errors import CertificateFetched
from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_atomic
from ecflow_remote.transport import ssh

_TIMEOUT = 20.0
_PEM = b"-----BEGIN CERTIFICATE-----"


def workstation_fetcher(profile: Profile, control_dir: Path) -> Callable[[list[Path]], Path | None]:
    """A fetcher for the native clients: for the files looked for at home (in order), the same file in the
    workstation user's ~/.ecflowrc/ssl, copied home (0644: a certificate is public) and announced as a
    CertificateFetched warning. Each file is asked for once per fetcher, found or not."""
    asked: set[Path] = set()
    lock = threading.Lock()

    def fetch(candidates: list[Path]) -> Path | None:
        with lock:
            for local in candidates:
                if local in asked:
                    continue
                asked.add(local)
                data = _cat(profile, control_dir, local.name)
                if data is None:
                    continue
                local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_atomic(local, data, mode=0o644)
                where = f"{ssh.destination(profile.gateway.host)}:~/.ecflowrc/ssl/{local.name}"
                warnings.warn(f"fetched the server certificate {where} to {local}", CertificateFetched, stacklevel=2)
                return local
            return None

    return fetch


def _cat(profile: Profile, control_dir: Path, name: str) -> bytes | None:
    """The certificate file `name` in the workstation's ~/.ecflowrc/ssl (or its ECF_SSL_DIR), or None."""
    path = shlex.quote(name)
    remote = f'cat "${{ECF_SSL_DIR:-$HOME/.ecflowrc/ssl}}"/{path}'
    argv = [*ssh.via_tunnel(profile, control_dir), ssh.destination(profile.gateway.host), remote]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout.lstrip().startswith(_PEM) or len(done.stdout) > 1 << 20:
        return None
    return done.stdout
