"""identity.py: what the native client sends, the custom password file and what launched programs get."""

from __future__ import annotations

from pathlib import Path

from ecflow_remote.access import identity
from ecflow_remote.plan import Endpoint, Plan
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


def test_names_and_password_lines(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    plan = Plan(
        "hosts",
        [
            Endpoint("server", "a", "m1", 4141, "127.77.0.1", 4141),
            Endpoint("server", "b", "m2", 3142, "127.77.0.2", 3142),
        ],
        hosts={"m1": "127.77.0.1", "m2": "127.77.0.2"},
    )
    lines = identity.custom_passwd_lines(profile, plan, {"b": "pw"})
    assert lines == ["bob 127.77.0.2 3142 pw", "bob m2 3142 pw"]
    local = Plan("local", [Endpoint("server", "b", "m2", 3142, "127.0.0.1", 40000)])
    assert identity.custom_passwd_lines(profile, local, {"b": "pw"}) == [
        "bob 127.0.0.1 40000 pw",
        "bob localhost 40000 pw",
    ]
    path = identity.write_custom_passwd(tmp_path, lines)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("5.9.2\n")
    auth = identity.client_auth(profile, {"b": "pw"})
    assert auth["b"].client_kwargs() == {"user": "bob", "custom_user": True, "password": "pw"}
    assert auth["a"].client_kwargs()["user"] == "other" and "pw" not in repr(auth["b"])


def test_launch_env(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    assert identity.launch_env(profile, "/x", "b") == {"ECF_USER": "bob", "ECF_CUSTOM_PASSWD": "/x"}
    assert identity.launch_env(profile, None, "a") == {}  # the ecflow_user name is the relay's job
