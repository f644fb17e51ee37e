"""certs.py's parsing and words: ssh-keygen -L validity, tsh status JSON, ssh -G, warnings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ecflow_remote.access import certs
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh

KEYGEN = """\
/home/u/.ssh/id_ed25519-cert.pub:
        Type: ssh-ed25519-cert-v01@openssh.com user certificate
        Key ID: "laptop"
        Valid: from 2024-05-01T10:00:00 to 2024-05-01T22:00:00
        Principals:
                user1
"""


def _profile(tmp_path: Path, extra: str = "") -> Profile:
    p = tmp_path / "p.toml"
    p.write_text(f'[gateway]\nhost = "u@ws"\n{extra}\n[[server]]\nname = "a"\nhost = "h"\nport = 4141\n')
    return load_profile(p)


def test_keygen_validity() -> None:
    start, end = certs.parse_keygen_validity(KEYGEN)  # type: ignore[misc]
    assert start == dt.datetime(2024, 5, 1, 10).timestamp()
    assert end == dt.datetime(2024, 5, 1, 22).timestamp()
    assert certs.parse_keygen_validity("        Valid: forever\n") == (None, None)
    assert certs.parse_keygen_validity("Valid: before 2024-05-01T22:00:00")[1] is not None  # type: ignore[index]
    assert certs.parse_keygen_validity("no such line") is None


def test_tsh_status() -> None:
    text = '{"active": {"valid_until": "2024-05-01T22:00:00.123456789Z", "username": "u"}}'
    assert certs.parse_tsh_status(text) == dt.datetime(2024, 5, 1, 22, 0, 0, 123456, dt.UTC).timestamp()
    assert certs.parse_tsh_status("{}") is None
    assert certs.parse_tsh_status("not json") is None


def test_ssh_g_candidates(tmp_path: Path) -> None:
    key = tmp_path / "id"
    Path(f"{key}-cert.pub").write_text("x")
    settings = ssh.parse_ssh_g(f"user u\nidentityfile {key}\nidentityfile {tmp_path}/absent\nidentityagent none\n")
    assert certs.certificate_files(settings) == [Path(f"{key}-cert.pub")]


def test_words(tmp_path: Path) -> None:
    profile = _profile(tmp_path, 'warn_before = "30m"\nlogin = "my-login --now"')
    now = 1_000_000.0
    soon = certs.Certificate("file x", now + 600)
    later = certs.Certificate("file x", now + 7200)
    gone = certs.Certificate("file x", now - 5)
    warned = certs.warning(profile, soon, now)
    assert warned is not None and "10 min" in warned
    assert certs.warning(profile, later, now) is None
    assert certs.problem(profile, later, now) is None
    why = certs.problem(profile, gone, now)
    assert why and "expired" in why and "my-login --now" in why and "ecflow-remote login" in why
    assert certs.login_command(profile) == ["my-login", "--now"]
    assert soon.to_json(now) == {"valid_until": now + 600, "seconds_left": 600.0, "source": "file x"}
    assert "EXPIRED" in certs.summary(profile, gone, now)
