"""What the native client sends to each server (ecflow_user, custom user and password) and custom-user password
files for launched programs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile, Server
from ecflow_remote.safefile import write_private

# The version line ecFlow 5.9.2 expects first in a password file (PasswdFile::validateVersionNumber).
PASSWD_FILE_VERSION = "5.9.2"


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


# ----------------------------------------------------------------------------------------------- passwords
# (A server's ecflow_user needs nothing here for launched programs: the user-name relay on its local endpoint,
# relay.py, presents it. The native client sends it itself: see client_auth.)


def auth_for(server: Server, passwords: Mapping[str, str]) -> Auth:
    if server.custom_user:
        return Auth(server.custom_user, True, passwords.get(server.name))
    return Auth(server.ecflow_user)


def client_auth(profile: Profile, passwords: Mapping[str, str] | None = None) -> dict[str, Auth]:
    """What the native client sends to each server: the custom user and password, or the ecflow_user name.
    Without `passwords` they are read here and the warnings dropped: a caller that shows them reads the passwords
    itself (passwords.read_passwords) and passes them."""
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
    write_private(path, PASSWD_FILE_VERSION + "\n" + "".join(line + "\n" for line in lines))
    return path


# ------------------------------------------------------------------------------------------ launched programs


def launch_env(profile: Profile, custom_passwd: str | None, server: str | None) -> dict[str, str]:
    """The environment additions for `run`: ECF_USER and the password file of custom users (`custom_passwd`: the
    supervisor's, from its run files).

    Only launched programs get them: the user's shell, other programs and other users see nothing new. (The
    ecflow_user name needs nothing here: the relay presents it. `ui` sets its own: see ui.launch.)
    """
    env: dict[str, str] = {}
    custom = _custom_user(profile, server)
    if custom and custom_passwd:
        env["ECF_USER"] = custom
        env["ECF_CUSTOM_PASSWD"] = custom_passwd
    return env


def _custom_user(profile: Profile, server: str | None) -> str | None:
    if server is not None:
        return profile.server(server).custom_user
    # ECF_USER is one name for the whole program: only set it when every password server shares it.
    names = {s.custom_user for s in profile.servers if s.custom_user}
    return names.pop() if len(names) == 1 else None
