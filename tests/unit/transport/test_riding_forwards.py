"""Forwards in the user's own ssh config would ride along on the tunnel's all-day connection: said, per hop."""

from __future__ import annotations

from pathlib import Path

from ecflow_remote.profile.model import Gateway, Profile, Server, SshTarget
from ecflow_remote.transport import ssh


def _profile(config: Path) -> Profile:
    gw = Gateway(jump=(SshTarget("u", "jump0"),), host=SshTarget("u", "machine1"), ssh_config=config)
    return Profile(Path("/p.toml"), gw, (Server("m1", "machine1", 4141),))


def test_a_forward_in_the_users_config_is_named_with_its_hop(tmp_path: Path) -> None:
    # The real ssh -G reads the config: no host is contacted.
    config = tmp_path / "config"
    config.write_text("Host machine1\n  LocalForward 8080 intranet:80\n  DynamicForward 1080\nHost *\n  User u\n")
    warnings = ssh.riding_forwards(_profile(config))
    assert len(warnings) == 1
    assert "machine1" in warnings[0] and "LocalForward 8080" in warnings[0] and "intranet" in warnings[0]
    assert "DynamicForward 1080" in warnings[0] and "jump0" not in warnings[0]


def test_no_forwards_no_warning(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host *\n  User u\n")
    assert ssh.riding_forwards(_profile(config)) == []
