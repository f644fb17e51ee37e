"""Newer ecFlow servers (5.13 from Debian 13, 5.19 from unstable) run from debootstrap chroots on Centre hosts."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Built once per machine by scripts/install-chroots (outside the clone: they are hundreds of MiB).
CHROOTS = Path(os.environ.get("ECFLOW_REMOTE_CHROOTS", "/var/lib/ecflow-remote-test/chroots"))
# ecFlow release -> the Debian release whose chroot has it; 5.9 is the machine's own (Debian 12).
RELEASES = {"5.13": "trixie", "5.19": "sid"}
VERSIONS = ("5.9", *RELEASES)
# https: ecflow_server --http behind the Centre's TLS front (tlsfront.py); ecflow_server itself has no https.
PROTOCOLS = ("plain", "ssl", "http", "https")


class ChrootMissing(RuntimeError):
    """A test asked for a newer server but the chroots were never built."""


def root(version: str) -> Path | None:
    """The chroot holding ecFlow `version`; None for the machine's own 5.9."""
    if version == "5.9":
        return None
    release = RELEASES[version]
    path = CHROOTS / release
    if not (path / ".ecflow-remote-ready").exists():
        raise ChrootMissing(f"ecFlow {version} needs the {release} chroot in {CHROOTS}: run scripts/install-chroots")
    return path


# The files of the Centre host's /etc view (`ip netns exec` binds them over /etc) the chroot sees instead of its
# own: its host names, a resolver at 127.0.0.1 (never the machine's real one) and the Centre's accounts.
_ETC = ("hosts", "resolv.conf", "passwd", "group")


def in_chroot(chroot: Path, shared: Path, argv: Sequence[str]) -> list[str]:
    """argv run inside `chroot`, in a private mount namespace (gone with its last process) that shows the host's
    /etc view, /dev, a /proc, and `shared` (the Centre's directory) at the same path."""
    r = shlex.quote(str(chroot))
    lines = ["set -e"]
    for name in _ETC:
        lines.append(f"touch {r}/etc/{name}; mount --bind /etc/{name} {r}/etc/{name}")
    s = shlex.quote(str(shared))
    lines += [
        f"mount --bind /dev {r}/dev",
        f"mount -t proc proc {r}/proc",
        f"mkdir -p {r}{s}; mount --bind {s} {r}{s}",
        f'exec chroot {r} "$@"',
    ]
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(lines), "sh", *argv]


def client_options(protocol: str) -> list[str]:
    """What ecflow_client needs on its command line for a server of `protocol` (TLS is asked for by ECF_SSL)."""
    return {"http": ["--http"], "https": ["--https"]}.get(protocol, [])


def client_env(protocol: str, home: Path) -> dict[str, str]:
    """The environment an ecflow_client of a `protocol` server needs: ECF_SSL and the home with the certificate."""
    return {"ECF_SSL": "1", "HOME": str(home)} if protocol == "ssl" else {"HOME": str(home)}


def make_tls_files(ssl_dir: Path, common_name: str) -> Path:
    """A self-signed server certificate, its key and DH parameters as ecFlow's docs set them up (server.crt,
    server.key, dh2048.pem in ~/.ecflowrc/ssl; no pass phrase); returns server.crt."""
    ssl_dir.mkdir(parents=True, exist_ok=True)
    crt, key, pem = ssl_dir / "server.crt", ssl_dir / "server.key", ssl_dir / "dh2048.pem"
    run = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3", "-subj", f"/CN={common_name}"]
    subprocess.run([*run, "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    # RFC 7919's ffdhe2048 group: what `openssl dhparam 2048` would make, without its minute of searching.
    subprocess.run(
        ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", str(pem)],
        check=True,
        capture_output=True,
    )
    os.chmod(key, 0o600)
    return crt


def forget(run_base: Path) -> None:
    """Remove the empty mount points a Centre left inside the chroots."""
    for release in RELEASES.values():
        point = CHROOTS / release / str(run_base).lstrip("/")
        with contextlib.suppress(OSError):
            point.rmdir()
