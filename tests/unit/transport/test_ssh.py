"""ssh command lines for a profile and plan, and ssh's errors in plain words."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.profile.model import Gateway, Profile, Server, SshTarget
from ecflow_remote.transport import ssh


def _profile(jumps: int = 1, config: Path | None = Path("/cfg")) -> Profile:
    jump = tuple(SshTarget("u", f"jump{i}") for i in range(jumps))
    gw = Gateway(jump=jump, host=SshTarget("u", "machine1"), ssh_config=config)
    return Profile(Path("/p.toml"), gw, (Server("m1", "machine1", 4141),))


PLAN = Plan("local", [Endpoint("server", "m1", "machine1", 4141, "127.0.0.1", 4141)])


SOCKETS = {"m1": Path("/run/x/fwd.sock")}


def test_plain_forwards_go_to_private_sockets_and_never_use_the_users_control_master() -> None:
    # ssh never listens on TCP: the supervisor's listeners own every local port, kept across reconnects.
    legs = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS)
    main = legs.main
    assert "-L" in main and main[main.index("-L") + 1] == "/run/x/fwd.sock:machine1:4141"
    assert "ExitOnForwardFailure=yes" in main and "BatchMode=yes" in main
    # Its own private master (never the user's ControlPath): endpoints that join later are forwarded through it.
    assert main[main.index("-S") + 1] == "/run/x/main.sock" and "-M" in main and "ControlPersist=no" in main
    assert main[main.index("-F") + 1] == "/cfg"
    assert main[-2:] == ["u@machine1", ssh.HOLD_COMMAND] and "-tt" in main
    assert "4141:machine1" not in " ".join(main).replace("/run/x/fwd.sock:machine1:4141", "")


def test_two_endpoints_at_one_host_port_share_one_forward() -> None:
    # A log server at an ecFlow server's host:port: one socket, one -L; a second would unlink the first's socket.
    twice = Plan("local", [*PLAN.endpoints, Endpoint("logserver", "ls", "machine1", 4141, "127.0.0.1", 4142)])
    sockets = {"m1": SOCKETS["m1"], "ls": SOCKETS["m1"]}
    main = ssh.legs(_profile(), twice, Path("/run/x"), forward_sockets=sockets).main
    added = ssh.control_forwards(_profile(), twice, Path("/run/x"), sockets, None)
    for argv in (main, added):
        assert argv.count("-L") == 1 and argv[argv.index("-L") + 1] == "/run/x/fwd.sock:machine1:4141"


def test_the_all_day_connection_carries_nothing_of_the_users_own() -> None:
    legs = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS)
    for argv in (legs.main, legs.jump_master or []):
        assert "-a" in argv and "-x" in argv and "PermitLocalCommand=no" in argv


def test_agent_main_leg_is_a_master_with_its_own_forwards_and_the_agent_rides_on_it() -> None:
    # ssh's own channels serve while the agent starts (and on a fast link after): same forwards as plain.
    main = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS).main
    assert main[main.index("-L") + 1] == "/run/x/fwd.sock:machine1:4141"
    assert main[main.index("-S") + 1] == "/run/x/main.sock" and "-M" in main and "-tt" in main
    agent = ssh.agent_argv(_profile(), Path("/run/x"))
    assert agent[agent.index("-S") + 1] == "/run/x/main.sock" and "ControlMaster=no" in agent
    assert "-T" in agent and "-tt" not in agent and agent[-1] == "u@machine1"


def test_forwards_added_later_go_through_the_main_legs_control_socket() -> None:
    # The same for either transport (the legs do not depend on it): the control socket is the main leg's.
    main = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS).main
    assert "-M" in main and "StreamLocalBindUnlink=yes" in main and "-tt" in main  # the pty session stays
    added = Plan("local", [Endpoint("logserver", "ls1", "logserver1", 9316, "127.0.0.1", 9316)])
    argv = ssh.control_forwards(_profile(), added, Path("/run/x"), {"ls1": Path("/run/x/ls.sock")}, None)
    assert argv[argv.index("-S") + 1] == "/run/x/main.sock" and argv[argv.index("-O") + 1] == "forward"
    assert argv[argv.index("-L") + 1] == "/run/x/ls.sock:logserver1:9316" and argv.count("-L") == 1
    assert "-D" not in argv and argv[-1] == "u@machine1" and argv[argv.index("-F") + 1] == "/cfg"


def test_single_jump_gets_a_pty_master_and_the_main_leg_rides_on_it() -> None:
    legs = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS)
    assert legs.jump_master is not None
    assert "-M" in legs.jump_master and "/run/x/jump.sock" in legs.jump_master and "-tt" in legs.jump_master
    proxy = next(a for a in legs.main if a.startswith("ProxyCommand="))
    assert "-S /run/x/jump.sock -W %h:%p u@jump0" in proxy and "-F /cfg" in proxy


def test_several_jumps_and_no_session_fall_back_to_plain_proxyjump() -> None:
    legs = ssh.legs(_profile(jumps=2), PLAN, Path("/run/x"), forward_sockets=SOCKETS)
    assert legs.jump_master is None
    assert legs.main[legs.main.index("-J") + 1] == "u@jump0,u@jump1"
    plain = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS, jump_session=False, main_session=False)
    assert plain.jump_master is None and "-N" in plain.main and "-tt" not in plain.main


def test_socks_listens_on_a_private_unix_socket() -> None:
    # ssh -D has no authentication: the TCP port is the password-checking front's (socks.py), never ssh's.
    plan = Plan("socks", [], socks_port=9050)
    main = ssh.legs(_profile(), plan, Path("/run/x"), socks_socket=Path("/run/x/socks.sock")).main
    assert main[main.index("-D") + 1] == "/run/x/socks.sock"
    assert "StreamLocalBindUnlink=yes" in main and "9050" not in " ".join(main)


@pytest.mark.parametrize(
    ("stderr", "words"),
    [
        ("user1@machine1: Permission denied (publickey).", "machine1 refused the login as user user1"),
        ("Host key verification failed.", "host key"),
        ("ssh: Could not resolve hostname jumpx: Name or service not known", "cannot resolve jumpx"),
        ("ssh: connect to host 10.1.1.1 port 22: Connection refused", "10.1.1.1 refused"),
        ("ssh: connect to host jump port 22: No route to host", "jump cannot be reached"),
        ("Timeout, server jump not responding.", "link to jump died"),
        ("", "without a message"),
    ],
)
def test_explain(stderr: str, words: str) -> None:
    assert words in ssh.explain(stderr)


# ssh's own words, as OpenSSH 9.2p1 printed them against the simulated Centre (user certificate valid for 12 h).
CAPTURED = {
    "wrong user at jump": "nobodyx@198.18.13.2: Permission denied (publickey).\n",
    "wrong user at workstation": "baduser@machine1: Permission denied (publickey).\n",
    "bad config option": "/tmp/c/cfg: line 18: Bad configuration option: frobnicate\n"
    "/tmp/c/cfg: terminating, 1 bad configuration options\n",
    "config missing": "Can't open user config file /tmp/c/nonexist: No such file or directory\n",
    "config unreadable": "Can't open user config file /tmp/c/ssh_config: Permission denied\n",
    "-J to a host without sshd": "channel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\n"
    "kex_exchange_identification: Connection closed by remote host\nConnection closed by UNKNOWN port 65535\n",
    "jump master to a host without sshd": "Stdio forwarding request failed: Session open refused by peer\n"
    "kex_exchange_identification: Connection closed by remote host\nConnection closed by UNKNOWN port 65535\n",
    "name does not resolve": "ssh: Could not resolve hostname nosuchjump: Temporary failure in name resolution\n",
    "port refused": "ssh: connect to host 198.18.13.2 port 2: Connection refused\n",
}


@pytest.mark.parametrize(
    ("case", "words", "auth"),
    [
        ("wrong user at jump", ["198.18.13.2 refused the login as user nobodyx", "(publickey)"], True),
        ("wrong user at workstation", ["machine1 refused the login as user baduser"], True),
        ("bad config option", ["line 18: Bad configuration option: frobnicate", "correct that line"], False),
        ("config missing", ["cannot read its configuration file /tmp/c/nonexist", "No such file"], False),
        ("config unreadable", ["cannot read its configuration file", "(Permission denied)"], False),
        ("-J to a host without sshd", ["workstation's sshd", "Connection refused", "stdio forwarding failed"], False),
        ("jump master to a host without sshd", ["Stdio forwarding request failed: Session open refused"], False),
        ("name does not resolve", ["cannot resolve nosuchjump: check"], False),
        ("port refused", ["198.18.13.2 refused the SSH connection on port 2"], False),
    ],
)
def test_explain_keeps_what_matters(case: str, words: list[str], auth: bool) -> None:
    """ssh's most useful line survives (a config file's line, the jump host's refusal); a local "Permission
    denied" on a file is no refused login."""
    text = ssh.explain(CAPTURED[case])
    for word in words:
        assert word in text, (word, text)
    assert "\n" not in text and "UNKNOWN" not in text and "refused your SSH certificate" not in text
    assert ssh.is_auth_failure(CAPTURED[case]) is auth


def _ssh_g(argv: list[str], **options: Any) -> str:
    done = subprocess.run(["ssh", *argv, "-G", "somehost"], capture_output=True, text=True, timeout=10, **options)
    assert done.returncode == 255, done
    return done.stderr


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH")
def test_config_errors_from_a_real_ssh(tmp_path: Path) -> None:
    """ssh reads its configuration before any connection: its own errors, live, without a network."""
    config = tmp_path / "config"
    config.write_text("Host *\n    User u\n\n    Frobnicate yes\n")
    text = ssh.explain(_ssh_g(["-F", str(config)]))
    assert f"{config}: line 4: Bad configuration option: frobnicate" in text, text
    text = ssh.explain(_ssh_g(["-F", str(tmp_path / "missing")]))
    assert f"cannot read its configuration file {tmp_path / 'missing'}" in text, text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to run ssh as another account)")
def test_unreadable_config_is_no_refused_login(tmp_path: Path) -> None:
    """ssh says "Permission denied" about a config file it may not read: never taken for the gateway's refusal
    (which added a false "no SSH certificate found")."""
    config = Path(tempfile.mkdtemp(dir="/tmp")) / "config"
    try:
        config.parent.chmod(0o755)
        config.write_text("Host *\n    User u\n")
        config.chmod(0o600)
        stderr = _ssh_g(["-F", str(config)], user="nobody", cwd="/")
    finally:
        shutil.rmtree(config.parent)
    assert "Permission denied" in stderr and not ssh.is_auth_failure(stderr)
    assert "cannot read its configuration file" in ssh.explain(stderr)


# ssh 9.2's words when a key file fails, as seen against the simulated Centre (issue 19, item 5).
def test_key_problems_from_the_files_ssh_resolved_and_its_log(tmp_path: Path) -> None:
    key, cert = tmp_path / "id", tmp_path / "id-cert.pub"
    key.write_text("k")
    cert.write_text("c")
    settings = ssh.parse_ssh_g(
        f"identityfile {tmp_path}/gone\nidentityfile {key}\ncertificatefile {tmp_path}/none.pub\n"
    )
    problems = ssh.key_problems(settings)
    assert [(p.option, p.path, p.why) for p in problems] == [
        ("IdentityFile", f"{tmp_path}/gone", "does not exist"),
        ("CertificateFile", f"{tmp_path}/none.pub", "does not exist"),
    ]
    assert problems[0].fix == "point IdentityFile at your private key, or put the file there"
    # ssh's own list when the config names no IdentityFile: a missing default is no problem.
    defaults = ssh.parse_ssh_g("identityfile ~/.ssh/id_rsa\nidentityfile ~/.ssh/id_ed25519\n")
    assert ssh.key_problems(defaults) == []
    # ssh's log: a key it could not load; its attempt to load the certificate as a key is only a consequence.
    log = (
        f'Load key "{cert}": bad permissions\n'
        f'Load key "{key}": error in libcrypto\n'
        f"no such identity: {tmp_path}/gone: No such file or directory\n"
        "user1@198.18.50.2: Permission denied (publickey).\n"
    )
    logged = ssh.key_problems(ssh.parse_ssh_g(f"identityfile {key}\ncertificatefile {cert}\n"), log)
    assert [(p.path, p.why) for p in logged] == [(str(key), ssh._LOAD_WORDS["error in libcrypto"])]
    assert logged[0].fix == "point IdentityFile at your private key"
    (tmp_path / "dir").mkdir()
    assert ssh.key_problems(ssh.parse_ssh_g(f"certificatefile {tmp_path}/dir\n"))[0].why == "is a directory"
