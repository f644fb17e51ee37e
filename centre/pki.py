"""The Centre's SSH certificate authorities: host certificates, and short-lived user certificates like Teleport's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from centre.network import run


def keygen(path: Path, comment: str) -> Path:
    """An ed25519 key pair at `path` (private) and `path.pub`."""
    if not path.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path


def sign_host(ca: Path, key: Path, identity: str, principals: Sequence[str]) -> Path:
    run(["ssh-keygen", "-q", "-s", str(ca), "-I", identity, "-h", "-n", ",".join(principals), f"{key}.pub"])
    return Path(f"{key}-cert.pub")


def sign_user(ca: Path, key: Path, identity: str, principals: Sequence[str], validity: str) -> Path:
    """(Re)issue the user certificate; `validity` as ssh-keygen -V takes it, e.g. "+12h" or "+20s"."""
    run(
        [
            "ssh-keygen",
            "-q",
            "-s",
            str(ca),
            "-I",
            identity,
            "-n",
            ",".join(principals),
            "-V",
            validity,
            f"{key}.pub",
        ]
    )
    return Path(f"{key}-cert.pub")
