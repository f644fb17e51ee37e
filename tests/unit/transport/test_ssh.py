"""ssh command lines for a profile and plan, and ssh's errors in plain words."""

from __future__ import annotations

from pathlib import Path

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
    assert "ControlPath=none" in main and "ExitOnForwardFailure=yes" in main and "BatchMode=yes" in main
    assert main[main.index("-F") + 1] == "/cfg"
    assert main[-2:] == ["u@machine1", ssh.HOLD_COMMAND] and "-tt" in main
    assert "4141:machine1" not in " ".join(main).replace("/run/x/fwd.sock:machine1:4141", "")


def test_the_all_day_connection_carries_nothing_of_the_users_own() -> None:
    legs = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS)
    for argv in (legs.main, legs.jump_master or []):
        assert "-a" in argv and "-x" in argv and "PermitLocalCommand=no" in argv


def test_agent_main_leg_is_a_master_without_forwards_and_the_agent_rides_on_it() -> None:
    main = ssh.legs(_profile(), PLAN, Path("/run/x"), agent=True).main
    assert "-L" not in main and "-D" not in main
    assert main[main.index("-S") + 1] == "/run/x/main.sock" and "-M" in main and "-tt" in main
    agent = ssh.agent_argv(_profile(), Path("/run/x"))
    assert agent[agent.index("-S") + 1] == "/run/x/main.sock" and "ControlMaster=no" in agent
    assert "-T" in agent and "-tt" not in agent and agent[-1] == "u@machine1"


def test_single_jump_gets_a_pty_master_and_the_main_leg_rides_on_it() -> None:
    legs = ssh.legs(_profile(), PLAN, Path("/run/x"), forward_sockets=SOCKETS)
    assert legs.jump_master is not None
    assert "-M" in legs.jump_master and "/run/x/jump.sock" in legs.jump_master and "-tt" in legs.jump_master
    proxy = next(a for a in legs.main if a.startswith("ProxyCommand="))
    assert "-S /run/x/jump.sock -W %h:%p u@jump0" in proxy and "-F /cfg" in proxy


def test_several_jumps_and_no_session_fall_back_to_plain_proxyjump() -> None:
    legs = ssh.legs(_profile(jumps=2), PLAN, Path("/run/x"), agent=True)
    assert legs.jump_master is None
    assert legs.main[legs.main.index("-J") + 1] == "u@jump0,u@jump1"
    plain = ssh.legs(_profile(), PLAN, Path("/run/x"), agent=True, jump_session=False, main_session=False)
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
        ("user1@machine1: Permission denied (publickey).", "certificate"),
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
