"""identity.py: what the native client sends, and what the relay presents for launched programs."""

from __future__ import annotations

from pathlib import Path

from ecflow_remote.access import identity, relay
from ecflow_remote.clients.ecflow.commands import crypt_password
from ecflow_remote.plan import server_endpoint
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile


def _profile(tmp_path: Path) -> Profile:
    p = tmp_path / "p.toml"
    p.write_text(
        '[gateway]\nhost = "u@ws"\necflow_user = "gw"\n'
        '[[server]]\nname = "a"\nhost = "m1"\nport = 4141\necflow_user = "other"\n'
        '[[server]]\nname = "b"\nhost = "m2"\nport = 3142\ncustom_user = "bob"\npassword = "env:X_PW"\n'
    )
    return load_profile(p)


def test_what_the_native_client_sends(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    auth = identity.client_auth(profile, {"b": "pw"})
    assert auth["b"].client_kwargs() == {"user": "bob", "custom_user": True, "password": "pw"}
    assert auth["a"].client_kwargs()["user"] == "other" and "pw" not in repr(auth["b"])


def test_the_relay_presents_each_servers_own_identity(tmp_path: Path) -> None:
    """The plan marks each server's relay: its custom user (with the password the supervisor holds, crypt()ed as
    ecflow_client sends it) before any ecflow_user; a password not read goes without."""
    profile = _profile(tmp_path)
    a, b = (server_endpoint(profile, n, h, p, "127.0.0.1", p) for n, h, p in (("a", "m1", 4141), ("b", "m2", 3142)))
    assert (a.relay_user, a.relay_custom, b.relay_user, b.relay_custom) == ("other", False, "bob", True)
    crypted = identity.relay_passwords(profile, {"b": "pw"})
    assert crypted == {"b": crypt_password("pw", "bob")} and "pw" not in crypted["b"]
    assert relay.presented_for(a, crypted) == relay.Presented("other")
    assert relay.presented_for(b, crypted) == relay.Presented("bob", True, crypt_password("pw", "bob"))
    assert "pswd" not in repr(relay.presented_for(b, crypted)) and crypted["b"] not in repr(
        relay.presented_for(b, crypted)
    )
    assert relay.presented_for(b, {}) == relay.Presented("bob", True, "")
    assert identity.relay_passwords(profile, {}) == {}
