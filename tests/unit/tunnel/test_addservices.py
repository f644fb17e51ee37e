"""Services added to a running tunnel: the launched programs' files written again for new names."""

from __future__ import annotations

from pathlib import Path

from ecflow_remote.endpoints import Wanted
from ecflow_remote.plan import Endpoint, Plan, merge
from ecflow_remote.tunnel import addservices
from ecflow_remote.tunnel.state import RunFiles

NET = "127.77.9."


def test_rewrite_files_writes_the_hosts_view_for_new_names(tmp_path: Path) -> None:
    from ecflow_remote.profile.model import Gateway, Profile, SshTarget

    profile = Profile(tmp_path / "p.toml", Gateway((), SshTarget("u", "machine1")), ())
    server = Endpoint("server", "machine1", "machine1", 4141, f"{NET}1", 4141)
    log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, f"{NET}2", 9316)
    base = Plan("hosts", [server, log], hosts={"machine1": f"{NET}1", "logserver1": f"{NET}2"})
    plan = merge(
        base, [Wanted("logserver", "logserver3:9316", "logserver3", 9316)], NET, lambda h, p: True, lambda h: 1
    )
    files, problems = addservices.rewrite_files(profile, plan, tmp_path, None, RunFiles(socks_auth="/x"))
    assert problems == [] and files.socks_auth == "/x" and files.hosts == str(tmp_path / "hosts")
    assert f"{NET}3\tlogserver3" in (tmp_path / "hosts").read_text()
