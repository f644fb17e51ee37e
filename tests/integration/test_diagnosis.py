"""The first broken link, named right by `up` and by `doctor` alike, against the simulated Centre: a wrong user with
a valid certificate, an ssh config ssh rejects, a workstation without sshd, a jump host that does not resolve or
refuses the port. A permanent error ends `up` at once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.integration.procs import cmdline, pids_naming

from ecflow_remote import doctor
from ecflow_remote.errors import TunnelError
from ecflow_remote.tunnel.handle import Tunnel

pytestmark = pytest.mark.integration


@dataclass
class Fault:
    """A profile the Centre refuses: how to make it from the good one, and what `up` and `doctor` must say."""

    name: str
    change: Callable[[Any, str, Path], str]
    up_words: list[str]
    broken: str  # doctor's first broken link
    doctor_words: list[str] = field(default_factory=list)  # in the broken step's detail and fix
    not_words: list[str] = field(default_factory=list)  # in neither


def _jump(user_host: str) -> Callable[[Any, str, Path], str]:
    return lambda c, text, _: text.replace(f'jump = "{c.jump}"', f'jump = "{user_host}"')


def _host(user_host: str) -> Callable[[Any, str, Path], str]:
    return lambda c, text, _: text.replace(f'host = "{c.workstation}"', f'host = "{user_host}"')


def _bad_config(c: Any, text: str, tmp: Path) -> str:
    config = tmp / "ssh_config"
    lines = c.ssh_config.read_text().splitlines()
    config.write_text("\n".join([*lines, "    Frobnicate yes", ""]))
    return text.replace(str(c.ssh_config), str(config))


def _config_line(option: str, value: Callable[[Path], Path]) -> Callable[[Any, str, Path], str]:
    """The profile's ssh config with `option` pointing at value(tmp) (a file ssh cannot use)."""

    def change(c: Any, text: str, tmp: Path) -> str:
        config = tmp / "ssh_config"
        lines = c.ssh_config.read_text().splitlines()
        config.write_text("\n".join(f"    {option} {value(tmp)}" if option in ln else ln for ln in lines) + "\n")
        return text.replace(str(c.ssh_config), str(config))

    return change


def _garbage(tmp: Path) -> Path:
    path = tmp / "not-a-key"
    path.write_text("not a key\n")
    path.chmod(0o600)
    return path


# A valid certificate ssh never offered must not be blamed on the user name (issue 19, item 5).
USER_BLAMED = ["check the user name", "although your SSH certificate is valid"]

CERTIFICATE_BLAMED = ["refused your SSH certificate", "expired or missing", "renew", "reconnects by itself"]

FAULTS = [
    Fault(
        "wrong user at the jump host",
        _jump("baduser@jump"),
        ["refused the login as user baduser", "although your SSH certificate is valid", "gateway.jump"],
        "jump",
        ["baduser", "gateway.jump"],
        CERTIFICATE_BLAMED,
    ),
    Fault(
        "wrong user at the workstation",
        _host("baduser@machine1"),
        ["machine1 refused the login as user baduser", "gateway.host"],
        "workstation",
        ["baduser", "gateway.host"],
        CERTIFICATE_BLAMED,
    ),
    Fault(
        "identity file missing",
        _config_line("IdentityFile", lambda tmp: tmp / "no-such-key"),
        ["ssh had no certificate to offer", "IdentityFile", "no-such-key does not exist", "point IdentityFile"],
        "jump",
        ["IdentityFile", "no-such-key does not exist"],
        [*USER_BLAMED, *CERTIFICATE_BLAMED],
    ),
    Fault(
        "certificate file missing",
        _config_line("CertificateFile", lambda tmp: tmp / "no-such-cert.pub"),
        ["ssh had no certificate to offer", "CertificateFile", "no-such-cert.pub does not exist"],
        "jump",
        ["CertificateFile", "no-such-cert.pub does not exist"],
        [*USER_BLAMED, *CERTIFICATE_BLAMED],
    ),
    Fault(
        "identity file not a key",
        _config_line("IdentityFile", _garbage),
        ["ssh had no certificate to offer", "not-a-key is not a private key ssh can read"],
        "jump",
        ["not-a-key is not a private key"],
        [*USER_BLAMED, *CERTIFICATE_BLAMED],
    ),
    Fault(
        "ssh config ssh rejects",
        _bad_config,
        ["line", "Bad configuration option: frobnicate"],
        "ssh config",
        ["Bad configuration option: frobnicate"],
        ["no SSH certificate", "workstation"],
    ),
    Fault(
        "workstation without sshd",
        _host("user1@machine2"),
        ["Stdio forwarding request failed", "workstation's sshd"],
        "workstation",
        ["machine2"],
        ["UNKNOWN", "closed the connection"],
    ),
    Fault(
        "jump host name does not resolve",
        _jump("user1@nosuchjump"),
        ["tunnel did not come up", "cannot resolve nosuchjump"],
        "jump",
        ["cannot resolve nosuchjump"],
        ["tunnel not up after", "waiting for"],
    ),
    Fault(
        "jump host port refused",
        _jump("user1@jump:2"),
        ["tunnel did not come up", "refused the SSH connection on port 2"],
        "jump",
        ["port 2"],
        ["tunnel not up after", "waiting for"],
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_up_and_doctor_name_the_same_cause(fault: Fault, centre: Any, tmp_path: Path) -> None:
    good = centre.write_profile(tmp_path / "good.toml")
    profile = tmp_path / "bad.toml"
    profile.write_text(fault.change(centre, good.read_text(), tmp_path))

    # A generous timeout: a permanent error must end `up` by the supervisor's verdict, not by the clock.
    tunnel = Tunnel(profile)
    with pytest.raises(TunnelError) as raised:
        tunnel.up(timeout=60)
    message = str(raised.value)
    assert not tunnel.is_running()
    # The logs the message points at are there to read (they used to be deleted before the message was shown),
    # until `down`.
    logs = re.search(r" \(logs?: ([^)]*)\)$", message)
    assert logs, message
    paths = [Path(p) for p in logs.group(1).split(", ")]
    assert all(p.is_file() for p in paths), paths
    assert any(p.name.startswith("ssh-") for p in paths), paths
    tunnel.down()
    assert not any(p.exists() for p in paths)
    for word in fault.up_words:
        assert word in message, (word, message)
    for word in fault.not_words:
        assert word not in message, (word, message)

    report = doctor.diagnose(profile, timeout=5)
    step = report.broken
    assert step is not None and step.name == fault.broken, report.text()
    said = f"{step.detail} {step.fix or ''}"
    for word in fault.doctor_words:
        assert word in said, (word, report.text())
    for word in fault.not_words:
        assert word not in said, (word, report.text())
    # Never the same advice twice (the detail used to repeat the fix), and a valid certificate is not marked ok
    # only to be blamed on the next line.
    assert not step.fix or step.fix not in step.detail, report.text()
    assert report.text().count(step.fix or "\0") <= 1, report.text()


def test_doctor_checks_the_running_tunnels_method(centre: Any, tmp_path: Path) -> None:
    """`up --method socks` with a profile that says local: doctor checks what runs (proxychains for socks)."""
    from centre.howto import free_port

    profile = centre.write_profile(tmp_path / "p.toml", "local", socks_port=free_port())
    by_profile = doctor.diagnose(profile, timeout=5)
    assert by_profile.broken is None and "proxychains" not in [s.name for s in by_profile.steps]
    tunnel = Tunnel(profile, method="socks")
    tunnel.up(timeout=30)
    try:
        report = doctor.diagnose(profile, timeout=5)
    finally:
        tunnel.down()
    assert report.broken is None, report.text()
    assert "proxychains" in [s.name for s in report.steps], report.text()
    assert "a tunnel runs (socks method)" in report.steps[1].detail


def test_expired_certificate_advice_once(centre: Any, tmp_path: Path) -> None:
    """doctor's FAIL line for an expired certificate says when; its fix says how to renew (not both)."""
    profile = centre.write_profile(tmp_path / "p.toml", login="true")
    centre.issue_certificate("-2h:-1h")
    try:
        report = doctor.diagnose(profile, timeout=5)
        with pytest.raises(TunnelError) as raised:
            Tunnel(profile).up(timeout=30)
    finally:
        centre.issue_certificate("+12h")
    # Nothing runs after a refused `up`: nothing will reconnect by itself.
    assert "certificate expired at" in str(raised.value) and "reconnects" not in str(raised.value)
    step = report.broken
    assert step is not None and step.name == "certificate", report.text()
    assert "EXPIRED" in step.detail and "ecflow-remote login" in (step.fix or "")
    assert report.text().count("ecflow-remote login") == 1, report.text()


def test_a_short_timeout_leaves_nothing_running(centre: Any, tmp_path: Path) -> None:
    """`up` gives up before the supervisor wrote its first state: the supervisor is stopped all the same (`down`
    alone could not find it, and the tunnel came up after `up` had said it did not)."""
    profile = centre.write_profile(tmp_path / "p.toml")
    tunnel = Tunnel(profile)
    with pytest.raises(TunnelError, match="not up after"):
        tunnel.up(timeout=0.01)
    assert not tunnel.is_running()
    assert not pids_naming(profile), [cmdline(pid) for pid in pids_naming(profile)]  # no supervisor, no ssh


def test_up_says_the_first_hop_does_not_answer(centre: Any, tmp_path: Path) -> None:
    """Packets to the jump host vanish (a 60 s round trip: as good as a firewall that drops them): ssh sits in its
    connect saying nothing; `up` shows why it waits, and says it at the end."""
    from centre import network
    from centre.homelink import HomeLink

    profile = centre.write_profile(tmp_path / "p.toml")
    seen: list[str] = []
    topo = centre.topology
    neigh = [topo.jump_home_address, "dev", topo.home_veth]
    centre.set_home_link(HomeLink(rtt=60, down_mbit=100, up_mbit=100))
    try:
        # The jump host's link-layer address, known in advance: else the delayed ARP fails in 3 s ("No route to
        # host"), which is not what a dropping firewall looks like.
        shown = network.run(["ip", "-j", "-n", topo.jump.netns, "link", "show", "dev", "home0"]).stdout
        mac = json.loads(shown)[0]["address"]
        network.run(["ip", "neigh", "replace", topo.jump_home_address, "lladdr", mac, "dev", topo.home_veth])
        with pytest.raises(TunnelError) as raised:
            Tunnel(profile).up(timeout=4, progress=lambda s: seen.append(s.message) if s else None)
    finally:
        network.run(["ip", "neigh", "del", *neigh], check=False)
        centre.set_home_link(None)
    assert any("port 22 does not answer" in m for m in seen), seen
    assert "port 22 does not answer" in str(raised.value), raised.value


def test_a_first_up_without_network_fails_on_its_own_attempts(centre: Any, tmp_path: Path) -> None:
    """The laptop has no way to the jump host (link down: ssh's connect ends in "No route to host" after the
    failed address lookup of the link layer): a first `up` ends after its few attempts, saying why, not at its
    timeout (a tunnel that was up waits for the network instead: test_faults)."""
    profile = centre.write_profile(tmp_path / "p.toml")
    centre.cut_link()
    try:
        t0 = time.monotonic()
        with pytest.raises(TunnelError) as raised:
            Tunnel(profile).up(timeout=60)
        took = time.monotonic() - t0
    finally:
        centre.restore_link()
    assert took < 45, took
    assert "cannot be reached" in str(raised.value) or "No route" in str(raised.value), raised.value
    assert not Tunnel(profile).is_running()


def _cli(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecflow_remote", "--profile", str(profile), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_misspelt_log_server_and_local_names(centre: Any, tmp_path: Path) -> None:
    """`up` names a log server that does not answer (it waits for ecFlow servers only); with the local method, the
    README's `run -- ecflow_client --host machine1 --port 4141 --ping` fails, and says where machine1 is here."""
    profile = tmp_path / "p.toml"
    profile.write_text(centre.write_profile(tmp_path / "good.toml").read_text().replace('"logserver2"', '"logsrever2"'))
    up = _cli(profile, "up", "--detach", "--timeout", "30")
    try:
        assert up.returncode == 0, up.stderr
        assert "not answering: log server logsrever2:9316" in up.stderr, up.stderr
        assert "logserver1" not in up.stderr, up.stderr
        local_port = Tunnel(profile).endpoint("machine1")[1]
        ran = _cli(profile, "run", "--", "ecflow_client", "--host", "machine1", "--port", "4141", "--ping")
        assert ran.returncode != 0
        hint = ran.stderr.strip().splitlines()[-1]
        assert hint.startswith("ecflow-remote: hint:") and f"127.0.0.1 port {local_port}" in hint, ran.stderr
        # The hint's own command works.
        ok = _cli(profile, "run", "--", "ecflow_client", "--host", "127.0.0.1", "--port", str(local_port), "--ping")
        assert ok.returncode == 0 and "hint" not in ok.stderr, ok.stderr
    finally:
        _cli(profile, "down")
