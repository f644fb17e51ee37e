"""certs.py's parsing and words: ssh-keygen -L validity, tsh status JSON, ssh -G, warnings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

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
    # With a CertificateFile ssh loads no IdentityFile's -cert.pub (OpenSSH 9.2): neither is one found here.
    named = ssh.parse_ssh_g(f"identityfile {key}\ncertificatefile {tmp_path}/absent-cert.pub\n")
    assert certs.certificate_files(named) == []


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


# ssh's words when the gateway refuses (OpenSSH 9.2p1, captured against the simulated Centre; the jump host by the
# address its ssh_config HostName gives, the workstation by name).
REFUSED_AT_JUMP = "baduser@198.18.13.2: Permission denied (publickey).\n"
REFUSED_AT_WORKSTATION = "baduser@machine1: Permission denied (publickey).\n"


def _write(tmp_path: Path, jump: str, host: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(f'[gateway]\njump = "{jump}"\nhost = "{host}"\n\n[[server]]\nname = "a"\nhost = "h"\nport = 4141\n')
    return p


@pytest.mark.parametrize(
    ("jump", "host", "ssh_text", "cert_left", "cause", "words"),
    [
        # A certificate valid for hours: the user name is wrong, at the hop ssh names.
        ("baduser@jump", "user1@machine1", REFUSED_AT_JUMP, 7 * 3600, "user", ["user baduser", "gateway.jump"]),
        ("user1@jump", "baduser@machine1", REFUSED_AT_WORKSTATION, 7 * 3600, "user", ["gateway.host", "7 h"]),
        # Same user on both hops, the jump reported by address: neither key can be told apart by name.
        ("baduser@jump", "baduser@machine1", REFUSED_AT_JUMP, 3600, "user", ["gateway.jump or gateway.host"]),
        # An expired certificate is the cause, whatever the user.
        ("baduser@jump", "user1@machine1", REFUSED_AT_JUMP, -60, "certificate", ["expired at", "renew"]),
        # None at all: say so, and how to get one.
        ("user1@jump", "user1@machine1", REFUSED_AT_JUMP, None, "no certificate", ["no SSH certificate"]),
        # ssh said no user@host: valid certificate, cause unknown, doctor finds it.
        ("user1@jump", "user1@machine1", "Certificate invalid: name is not a listed principal", 3600, "unknown", []),
    ],
)
def test_refusal_blames_the_certificate_only_when_it_explains_it(
    tmp_path: Path, jump: str, host: str, ssh_text: str, cert_left: float | None, cause: str, words: list[str]
) -> None:
    profile = load_profile(_write(tmp_path, jump, host))
    now = 1_000_000.0
    cert = None if cert_left is None else certs.Certificate("file c", now + cert_left)
    refused = certs.refusal(profile, cert, ssh_text, now)
    assert refused.cause == cause, refused
    for word in words:
        assert word in refused.text, (word, refused.text)
    if cause == "user":
        assert "renew" not in refused.text and "expired" not in refused.text
    assert "reconnects by itself" not in refused.text  # `up` has nothing left running to reconnect
    assert refused.fix not in refused.what  # doctor prints both: never the same advice twice


def test_summary_without_the_hint(tmp_path: Path) -> None:
    profile = _profile(tmp_path, 'login = "my-login"')
    gone = certs.Certificate("file x", 5.0)
    assert "my-login" in certs.summary(profile, gone, 10.0)
    assert "my-login" not in certs.summary(profile, gone, 10.0, hint=False)


def test_refusal_names_the_file_ssh_could_not_offer(tmp_path: Path) -> None:
    """A valid certificate ssh never offered (its key file is missing) is no reason to blame the user name; a key
    that loads, refused, still is (issue 19, item 5). ssh -G reads the profile's own config (no network)."""
    cert, key = tmp_path / "id-cert.pub", tmp_path / "id"
    cert.write_text("c")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n    IdentityFile {key}\n    CertificateFile {cert}\n")
    profile_path = _write(tmp_path, "user1@jump", "user1@machine1")
    profile_path.write_text(profile_path.read_text().replace("[gateway]", f'[gateway]\nssh_config = "{config}"'))
    profile = load_profile(profile_path)
    now = 1_000_000.0
    valid = certs.Certificate(f"file {cert}", now + 7 * 3600, path=str(cert))

    refused = certs.refusal(profile, valid, "user1@198.18.13.2: Permission denied (publickey).\n", now)
    assert refused.cause == "key", refused
    assert f"IdentityFile {key} does not exist" in refused.what and "ssh had no certificate to offer" in refused.what
    assert "user name" not in refused.text and "valid for" not in refused.text
    assert f"ssh -G -F {config}" in refused.fix and refused.fix not in refused.what

    key.write_text("k")  # the key is there: ssh offered the certificate, and the name is what was refused
    refused = certs.refusal(profile, valid, "baduser@198.18.13.2: Permission denied (publickey).\n", now)
    assert refused.cause == "user" and "user baduser" in refused.what, refused
