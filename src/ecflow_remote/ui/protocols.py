"""What ecflow_ui needs for TLS and HTTP servers: the certificates where its release reads them (a directory of its
own, ECF_SSL_DIR; for 5.9, which reads only ~/.ecflowrc/ssl, that directory), and which servers it cannot speak to."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ecflow_remote.errors import UiError
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_atomic
from ecflow_remote.ui.confdir import profile_ui_servers

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow.channel import CertificateFetcher

# ecflow_ui honours ECF_SSL_DIR from this release on (Openssl::certificates_dir); before, only $HOME/.ecflowrc/ssl.
SSL_DIR_SINCE: Final = (5, 13, 6)
# ecflow_ui speaks HTTP (servers.txt's protocol codes 2 and 3) from this release on.
HTTP_SINCE: Final = (5, 14, 0)
_RELEASE = re.compile(r"ecFlowUI\s+(\d+)\.(\d+)\.(\d+)")


def release(exe: str, env: Mapping[str, str]) -> tuple[int, int, int] | None:
    """ecflow_ui's release, as its launch script's help says it ("ecFlowUI 5.9.2"); None if it does not say."""
    # No display: should `-h` start the program after all (a wrapper of the user's), Qt stops at once.
    quiet = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    try:
        done = subprocess.run(
            [exe, "-h"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=20,
            env=quiet,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = _RELEASE.search(done.stdout)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def unspoken(profile: Profile, got: tuple[int, int, int] | None) -> list[str]:
    """The line for the HTTP and HTTPS servers an ecflow_ui of release `got` cannot speak to (none if unknown)."""
    names = [s.name for s in profile.servers if s.protocol in ("http", "https")]
    if got is None or got >= HTTP_SINCE or not names:
        return []
    version = ".".join(map(str, got))
    return [
        f"ecflow_ui {version} speaks no HTTP (5.14 and later do): {', '.join(names)} will not connect in it; name a "
        "newer ecflow_ui with [ui] ecflow_ui in the profile, or use `ecflow-remote web`"
    ]


def found_certificates(profile: Profile, fetch: CertificateFetcher | None = None) -> dict[str, Path]:
    """Each TLS server's certificate at home (else fetched from the workstation), by server name. None missing at
    home is an error here; ecflow_ui would only say it cannot connect."""
    from ecflow_remote.clients.ecflow import certs

    found = {}
    for server in profile.servers:
        if server.protocol != "ssl":
            continue
        path = certs.find(server.host, server.port)
        if path is None and fetch is not None:
            path = fetch(certs.candidates(server.host, server.port))
        if path is None:
            raise UiError(certs.missing_words(server.host, server.port, f"ecFlow server {server.name}"))
        found[server.name] = path
    return found


def _row_host(host: str, hostname: str) -> str:
    # ecFlow names a `localhost` server's certificate after the machine's host name (Openssl::enable).
    return hostname if host == "localhost" else host


def tls_certificates(
    config_dir: Path, profile: Profile, plan: Plan, found: Mapping[str, Path], hostname: str | None = None
) -> dict[str, str]:
    """ECF_SSL_DIR for the TLS servers (ecflow_ui 5.13.6 and later read it): a directory in the UI's config dir with
    each one's certificate under the <host>.<port>.crt of the row servers.txt gives it (a local endpoint's, for
    the local method, also under `hostname`: the UI's host name)."""
    if not found:
        return {}
    rows = {s.name: (s.host, s.port) for s in profile_ui_servers(profile, plan)}
    directory = config_dir / "ssl"
    directory.mkdir(mode=0o700, exist_ok=True)
    for name, path in found.items():
        host, port = rows[name]
        for alias in {host, _row_host(host, hostname or socket.gethostname())}:
            shutil.copyfile(path, directory / f"{alias}.{port}.crt")
    # ecFlow appends the file name to ECF_SSL_DIR as it is: the trailing slash is needed.
    return {"ECF_SSL_DIR": f"{directory}/"}


def home_certificates(
    profile: Profile, plan: Plan, found: Mapping[str, Path], home: Path, hostname: str | None = None, ui: str = "5.9"
) -> list[str]:
    """For an ecflow_ui that reads only $HOME/.ecflowrc/ssl (server.crt first, for every TLS server, then
    <host>.<port>.crt with the row's host and port): each TLS server's certificate put there under its row's
    name where no file is; a file there is never replaced. The lines to say: what was put where, and what stands
    in the way (a server.crt or a file of that name that is another certificate). `ui`: its release, for them."""
    if not found:
        return []
    rows = {s.name: (s.host, s.port) for s in profile_ui_servers(profile, plan)}
    directory = home / ".ecflowrc" / "ssl"
    shared = directory / "server.crt"
    notes = []
    for name, path in found.items():
        data = path.read_bytes()
        host, port = rows[name]
        target = directory / f"{_row_host(host, hostname or socket.gethostname())}.{port}.crt"
        taken = shared if shared.is_file() else target  # a server.crt there is taken for every TLS server
        if taken.is_file():
            if _read(taken) != data:
                every = " (it takes server.crt for every TLS server)" if taken == shared else ""
                notes.append(
                    f"ecflow_ui {ui} takes {taken} for {name}{every}, but it is another certificate than {path}: "
                    f"left as it is, so {name} will not connect in it (ecflow_ui 5.13.6 and later take the one "
                    "ecflow-remote gives them)"
                )
            continue
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(target, data, mode=0o644)  # a certificate is public
        except OSError as e:
            raise UiError(f"cannot put {name}'s certificate at {target} for ecflow_ui {ui}: {e.strerror}") from None
        notes.append(f"put {name}'s certificate at {target}: ecflow_ui {ui} reads certificates only from {directory}")
    return notes


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def ui_home(env: Mapping[str, str]) -> Path:
    """The home ecflow_ui will have (its $HOME)."""
    return Path(env.get("HOME") or os.path.expanduser("~"))
