"""status.py's report of a tunnel that is not running: its data shape, from the profile and a real certificate.

The running branches (live checks, the supervisor's last checks) need a running supervisor: they are covered by
the integration tests (test_tunnel, test_access, test_security), not faked here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ecflow_remote import status
from ecflow_remote.tunnel.handle import Tunnel

needs_ssh = pytest.mark.skipif(
    shutil.which("ssh") is None or shutil.which("ssh-keygen") is None, reason="needs OpenSSH (ssh -G, ssh-keygen)"
)

ROW_KEYS = {
    "name",
    "host",
    "port",
    "local_host",
    "local_port",
    "reachable",
    "latency_ms",
    "version",
    "error",
    "origin",
    "used_by",
}


def _keygen(*args: str) -> None:
    subprocess.run(["ssh-keygen", "-q", *args], check=True, capture_output=True, timeout=30)


def _profile(tmp_path: Path, validity: str | None) -> tuple[Path, Path]:
    """A profile whose ssh_config offers one key, with a certificate valid for `validity` (ssh-keygen -V) or none;
    the profile's path and the certificate's."""
    key = tmp_path / "id_ed25519"
    _keygen("-t", "ed25519", "-N", "", "-f", str(key))
    cert = Path(f"{key}-cert.pub")
    if validity is not None:
        _keygen("-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca"))
        _keygen("-s", str(tmp_path / "ca"), "-I", "laptop", "-n", "user1", "-V", validity, f"{key}.pub")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  IdentityFile {key}\n  IdentityAgent none\n")
    profile = tmp_path / "p.toml"
    profile.write_text(
        f'[gateway]\nhost = "user1@ws"\nssh_config = "{config}"\nwarn_before = "1h"\n\n'
        '[[server]]\nname = "m1"\nhost = "machine1"\nport = 4141\n\n'
        '[[server]]\nname = "m2"\nhost = "machine2"\nport = 3142\n\n'
        '[[logserver]]\nhost = "logserver1"\nport = 9316\n'
    )
    return profile, cert


@needs_ssh
def test_report_of_a_stopped_tunnel(tmp_path: Path) -> None:
    profile, cert = _profile(tmp_path, "-5m:+2h")
    data = status.report(Tunnel(profile), live=True)
    assert json.loads(json.dumps(data)) == data  # what `status --json` prints
    assert set(data) == {"tunnel", "servers", "logservers", "web_proxy", "web_pac", "checked"}
    assert data["web_proxy"] is None and data["web_pac"] is None  # no supervisor, no proxy
    tunnel = data["tunnel"]
    assert (tunnel["state"], tunnel["method"], tunnel["pid"], tunnel["since"]) == ("down", "local", None, None)
    assert "ecflow-remote up" in tunnel["message"]
    assert (tunnel["reconnects"], tunnel["warnings"], tunnel["profile"]) == (0, [], str(profile))
    certificate = tunnel["certificate"]
    assert certificate["source"] == f"file {cert}"
    assert 3600 < certificate["seconds_left"] <= 7200
    assert certificate["warning"] is None and "left, until" in certificate["summary"]

    # Every profile service, none reachable, each saying why; log servers are not named (host:port is their name).
    assert [(r["name"], r["host"], r["port"]) for r in data["servers"]] == [
        ("m1", "machine1", 4141),
        ("m2", "machine2", 3142),
    ]
    assert [(r["host"], r["port"]) for r in data["logservers"]] == [("logserver1", 9316)]
    for row in data["servers"]:
        assert set(row) == ROW_KEYS
    assert set(data["logservers"][0]) == ROW_KEYS - {"name"}
    for row in data["servers"] + data["logservers"]:
        assert not row["reachable"] and row["error"] == "tunnel not running"
        assert row["local_host"] is row["local_port"] is row["latency_ms"] is row["version"] is None


@needs_ssh
@pytest.mark.parametrize(
    ("validity", "words"),
    [("-5m:+10m", "certificate expires in"), ("-2h:-1h", "expired"), (None, None)],
)
def test_certificate_warning_in_the_report(tmp_path: Path, validity: str | None, words: str | None) -> None:
    """Ending within warn_before, already ended, or no certificate at all (then no certificate entry)."""
    profile, _ = _profile(tmp_path, validity)
    certificate = status.report(Tunnel(profile), live=False)["tunnel"]["certificate"]
    if words is None:
        assert certificate is None
        return
    assert words in certificate["warning"] and "ecflow-remote login" in certificate["warning"]
