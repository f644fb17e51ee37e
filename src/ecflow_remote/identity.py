"""White-list identity (the Centre user name launched programs present) and custom-user password files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.methods import Plan
from ecflow_remote.profile import Profile, Server

# The version line ecFlow 5.9.2 expects first in a password file (PasswdFile::validateVersionNumber).
PASSWD_FILE_VERSION = "5.9.2"


class IdentityError(EcflowRemoteError):
    """The identity or password set-up for a launched program cannot be made."""


@dataclass(frozen=True)
class Auth:
    """Who the native client says it is for one server. `password` is the plain text; never shown."""

    user: str | None
    custom_user: bool = False
    password: str | None = None

    def client_kwargs(self) -> dict[str, Any]:
        return {"user": self.user, "custom_user": self.custom_user, "password": self.password}

    def __repr__(self) -> str:
        # A stray log of this object must never carry the secret.
        return f"Auth(user={self.user!r}, custom_user={self.custom_user}, password={'***' if self.password else None})"


# --------------------------------------------------------------------------------------- white-list identity


def launch_user(profile: Profile, server: str | None = None) -> str | None:
    """The login name launched programs present: the --server's ecflow_user, else the gateway's.

    One process has one login name, so when servers name different users only the chosen server's (or the
    gateway's) name is used; programs that talk to several servers present that one name to all of them.
    """
    if server is not None:
        return profile.server(server).ecflow_user
    if profile.gateway.ecflow_user:
        return profile.gateway.ecflow_user
    names = {s.ecflow_user for s in profile.servers}
    return names.pop() if len(names) == 1 else None


def passwd_text(name: str, uid: int, gid: int, base: str) -> str:
    """`base` (an /etc/passwd) with the entry of `uid` renamed to `name`: getpwuid(getuid()) then says `name`.

    Only the name changes: the uid, home and shell stay, so the program still runs as, and can only do what, the
    user can; the server's white list is the only place the name matters.
    """
    lines = base.splitlines()
    for i, line in enumerate(lines):
        fields = line.split(":")
        if len(fields) >= 7 and not line.startswith("#") and fields[2] == str(uid):
            fields[0] = name
            lines[i] = ":".join(fields)
            # getpwuid returns the first match: this one. Later entries with the same uid are left alone.
            return "\n".join(lines) + "\n"
    home = os.path.expanduser("~")
    return "\n".join([*lines, f"{name}:x:{uid}:{gid}:ecflow-remote identity:{home}:/bin/sh"]) + "\n"


def write_passwd_view(rundir: Path, name: str) -> Path:
    """The private /etc/passwd for launched programs presenting `name` (written once per name, in the run dir)."""
    path = rundir / f"passwd.{name}"
    try:
        base = Path("/etc/passwd").read_text()
    except OSError as e:
        raise IdentityError(f"cannot read /etc/passwd to build the ecflow_user view: {e.strerror}") from e
    tmp = path.with_suffix(".tmp")
    tmp.write_text(passwd_text(name, os.getuid(), os.getgid(), base))
    os.chmod(tmp, 0o644)  # public information, like /etc/passwd itself
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------- passwords


def read_passwords(profile: Profile) -> tuple[dict[str, str], list[str]]:
    """Every server's password (by server name), and the errors (never containing a secret) of those not read."""
    passwords: dict[str, str] = {}
    errors: list[str] = []
    for s in profile.servers:
        if s.password is None:
            continue
        try:
            passwords[s.name] = s.password.read()
        except EcflowRemoteError as e:
            errors.append(f"server {s.name}: {e}")
    return passwords, errors


def auth_for(server: Server, passwords: Mapping[str, str]) -> Auth:
    if server.custom_user:
        return Auth(server.custom_user, True, passwords.get(server.name))
    return Auth(server.ecflow_user)


def client_auth(profile: Profile, passwords: Mapping[str, str] | None = None) -> dict[str, Auth]:
    """What the native client sends to each server: the custom user and password, or the ecflow_user name."""
    if passwords is None:
        passwords, _ = read_passwords(profile)
    return {s.name: auth_for(s, passwords) for s in profile.servers}


def custom_passwd_lines(profile: Profile, plan: Plan, passwords: Mapping[str, str]) -> list[str]:
    """`<user> <host> <port> <password>` for each way a launched ecflow_client can name a server's LOCAL endpoint.

    ecflow_client looks its password up by the host string and port it was told to connect to (ECF_HOST as given:
    127.0.0.1, localhost, a 127.77.0.N alias, or under the hosts/socks methods the Centre name that the private
    hosts view resolves to loopback), then by its own host name. Never the Centre's real endpoint.
    """
    lines: list[str] = []
    seen: set[tuple[str, str, int]] = set()
    for s in profile.servers:
        if not s.custom_user or s.name not in passwords:
            continue
        try:
            e = plan.endpoint(s.name)
        except StopIteration:
            continue
        hosts = [e.local_host]
        if e.local_host == "127.0.0.1":
            hosts.append("localhost")
        if plan.hosts.get(e.host) == e.local_host and e.local_port == e.port:
            hosts.append(e.host)
        for host in hosts:
            if (s.custom_user, host, e.local_port) in seen:
                continue
            seen.add((s.custom_user, host, e.local_port))
            lines.append(f"{s.custom_user} {host} {e.local_port} {passwords[s.name]}")
    return lines


def write_custom_passwd(rundir: Path, lines: list[str]) -> Path:
    """ECF_CUSTOM_PASSWD for launched programs: created 0600 from the start (never readable by others)."""
    path = rundir / "ecf.custom_passwd"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(PASSWD_FILE_VERSION + "\n" + "".join(line + "\n" for line in lines))
    return path


def write_files(profile: Profile, plan: Plan, rundir: Path, passwords: Mapping[str, str]) -> dict[str, str]:
    """The supervisor's identity files for launched programs: passwd view (default name) and custom passwords."""
    files: dict[str, str] = {}
    name = launch_user(profile)
    if name:
        files["passwd"] = str(write_passwd_view(rundir, name))
    lines = custom_passwd_lines(profile, plan, passwords)
    if lines:
        files["custom_passwd"] = str(write_custom_passwd(rundir, lines))
    return files


# ------------------------------------------------------------------------------------------ launched programs


def launch_setup(
    profile: Profile, files: Mapping[str, str], server: str | None, rundir: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """(files, environment additions) for `run`/`ui`: the passwd view of the chosen name, ECF_USER, the password file.

    Only launched programs get them: the user's shell, other programs and other users see nothing new.
    """
    files = dict(files)
    env: dict[str, str] = {}
    name = launch_user(profile, server)
    if name:
        # The --server's own name may differ from the default view the supervisor wrote.
        files["passwd"] = str(write_passwd_view(rundir, name))
    else:
        files.pop("passwd", None)
    custom = _custom_user(profile, server)
    if custom and "custom_passwd" in files:
        env["ECF_USER"] = custom
        env["ECF_CUSTOM_PASSWD"] = files["custom_passwd"]
    return files, env


def _custom_user(profile: Profile, server: str | None) -> str | None:
    if server is not None:
        return profile.server(server).custom_user
    # ECF_USER is one name for the whole program: only set it when every password server shares it.
    names = {s.custom_user for s in profile.servers if s.custom_user}
    return names.pop() if len(names) == 1 else None
