"""Who each server is told the client is: what the native client sends (ecflow_user, custom user and password), and
the custom users' passwords as the relay presents them for launched programs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.clients.ecflow.commands import crypt_password
from ecflow_remote.profile.model import Profile, Server


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
# Launched programs are given no identity at all: they send the login name, and the relay on each server's local
# endpoint (relay.py) presents that server's own (its ecflow_user, or its custom user and password). The native
# client sends it itself: see client_auth.


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


def relay_passwords(profile: Profile, passwords: Mapping[str, str]) -> dict[str, str]:
    """Each custom user's password as the relay puts it in requests (crypt()ed, as ecflow_client 5.9.2 sends it),
    by server name; a server whose password was not read has none (its requests go without, as the native
    client's)."""
    return {
        s.name: crypt_password(passwords[s.name], s.custom_user)
        for s in profile.servers
        if s.custom_user and s.name in passwords
    }
