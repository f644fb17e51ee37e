"""The system hosts file fallback: one marked block per tunnel, atomic, backed up, nothing else touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecflow_remote import programs
from ecflow_remote.errors import LaunchError, SystemHostsError
from ecflow_remote.hosts import system as systemhosts
from ecflow_remote.hosts import view
from ecflow_remote.hosts.system import add_block, has_block, remove_block
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.tunnel.state import RunFiles

ORIGINAL = "127.0.0.1\tlocalhost\n# the user's own comment\n10.0.0.5\tprinter  # keep me\n::1\tip6-localhost\n"
MAP1 = {"machine1": "127.77.5.1", "logserver1": "127.77.5.2"}
MAP2 = {"machine2": "127.77.9.1"}


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)
    path.chmod(0o644)
    return path


def outside(text: str) -> str:
    """The file's lines outside every ecflow-remote block."""
    keep, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("# >>> ecflow-remote "):
            inside = True
        elif line.startswith("# <<< ecflow-remote "):
            inside = False
        elif not inside:
            keep.append(line)
    return "".join(keep)


def test_add_then_remove_restores_the_file(hosts: Path) -> None:
    assert add_block(hosts, "abc123", MAP1, "/p/profile.toml (hosts method)")
    text = hosts.read_text()
    assert text.startswith(ORIGINAL)
    assert "# >>> ecflow-remote abc123 >>>\n" in text
    assert "127.77.5.1\tmachine1\n127.77.5.2\tlogserver1\n# <<< ecflow-remote abc123 <<<\n" in text
    assert has_block(hosts, "abc123")
    assert remove_block(hosts, "abc123")
    assert hosts.read_text() == ORIGINAL
    assert not has_block(hosts, "abc123")
    assert not remove_block(hosts, "abc123")  # idempotent


def test_add_is_idempotent_and_replaces_a_stale_block(hosts: Path) -> None:
    assert add_block(hosts, "t1", MAP1)
    first = hosts.read_text()
    assert not add_block(hosts, "t1", MAP1)  # nothing to do: no write
    assert hosts.read_text() == first
    # A killed tunnel's block, with other addresses: replaced, never duplicated.
    assert add_block(hosts, "t1", {"machine1": "127.77.6.1"})
    text = hosts.read_text()
    assert text.count("# >>> ecflow-remote t1 >>>") == 1
    assert "127.77.6.1\tmachine1" in text and "127.77.5.1" not in text
    assert outside(text) == ORIGINAL


def test_a_block_added_by_hand_with_another_comment_counts_as_in_place(hosts: Path) -> None:
    assert systemhosts.main(["add", "t1", "machine1=127.77.5.1", "logserver1=127.77.5.2", "--path", str(hosts)]) == 0
    before = hosts.read_text()
    assert not add_block(hosts, "t1", MAP1, "/p/profile.toml (hosts method)")
    assert hosts.read_text() == before
    assert systemhosts.main(["remove", "t1", "--path", str(hosts)]) == 0
    assert hosts.read_text() == ORIGINAL


def test_two_profiles_blocks_coexist(hosts: Path) -> None:
    add_block(hosts, "one", MAP1)
    add_block(hosts, "two", MAP2)
    assert systemhosts.tags(hosts) == ["one", "two"]
    add_block(hosts, "one", {"machine1": "127.77.5.3"})  # replacing one leaves the other where it is
    remove_block(hosts, "one")
    text = hosts.read_text()
    assert not has_block(hosts, "one") and has_block(hosts, "two")
    assert "127.77.9.1\tmachine2" in text
    remove_block(hosts, "two")
    assert hosts.read_text() == ORIGINAL


def test_lines_added_by_the_user_while_up_are_kept(hosts: Path) -> None:
    add_block(hosts, "t1", MAP1)
    with hosts.open("a") as f:
        f.write("192.0.2.7\tnewhost\n")
    remove_block(hosts, "t1")
    assert hosts.read_text() == ORIGINAL + "192.0.2.7\tnewhost\n"


def test_file_without_final_newline(hosts: Path) -> None:
    hosts.write_text("127.0.0.1 localhost")
    add_block(hosts, "t1", MAP2)
    assert hosts.read_text().startswith("127.0.0.1 localhost\n# >>> ecflow-remote t1 >>>\n")
    remove_block(hosts, "t1")
    assert hosts.read_text() == "127.0.0.1 localhost\n"


def test_backup_is_the_file_without_our_blocks(hosts: Path) -> None:
    backup = hosts.with_name("hosts.ecflow-remote.bak")
    add_block(hosts, "t1", MAP1)
    assert backup.read_text() == ORIGINAL
    assert (backup.stat().st_mode & 0o777) == 0o644
    add_block(hosts, "t2", MAP2)
    remove_block(hosts, "t1")
    assert backup.read_text() == ORIGINAL  # never a file that has our blocks


def test_mode_and_owner_kept(hosts: Path) -> None:
    hosts.chmod(0o640)
    st = hosts.stat()
    add_block(hosts, "t1", MAP1)
    new = hosts.stat()
    assert (new.st_mode & 0o777) == 0o640
    assert (new.st_uid, new.st_gid) == (st.st_uid, st.st_gid)
    assert new.st_ino != st.st_ino  # replaced by rename, not rewritten in place


def test_failure_mid_write_leaves_the_original_whole(hosts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_block(hosts, "t1", MAP1)
    before = hosts.read_text()

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(systemhosts.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        add_block(hosts, "t2", MAP2)
    with pytest.raises(SystemHostsError, match="Input/output error"):
        systemhosts.remove(hosts, "t1")
    assert hosts.read_text() == before
    # No temp file left beside it (the lock file stays: removing it would let two editors lock different files).
    assert sorted(p.name for p in hosts.parent.iterdir()) == [
        "hosts",
        "hosts.ecflow-remote.bak",
        "hosts.ecflow-remote.lock",
    ]


def test_follows_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    real = tmp_path / "private" / "hosts"
    real.parent.mkdir()
    real.write_text(ORIGINAL)
    link = tmp_path / "hosts"
    link.symlink_to(real)
    add_block(link, "t1", MAP1)
    assert link.is_symlink() and has_block(real, "t1")
    remove_block(link, "t1")
    assert real.read_text() == ORIGINAL


def test_not_writable_refuses_with_the_sudo_command(hosts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemhosts.os, "access", lambda path, mode: False)
    with pytest.raises(SystemHostsError) as err:
        systemhosts.add(hosts, "t1", MAP1)
    message = str(err.value)
    assert "permission denied" in message and "sudo " in message
    assert "-m ecflow_remote.hosts.system add t1 machine1=127.77.5.1 logserver1=127.77.5.2" in message
    assert hosts.read_text() == ORIGINAL
    assert not hosts.with_name("hosts.ecflow-remote.bak").exists()


def test_not_writable_but_block_in_place_is_fine(hosts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_block(hosts, "t1", MAP1)
    monkeypatch.setattr(systemhosts.os, "access", lambda path, mode: False)
    assert not systemhosts.add(hosts, "t1", MAP1)  # e.g. added once with sudo
    with pytest.raises(SystemHostsError, match=r"sudo .* -m ecflow_remote.hosts.system remove t1"):
        systemhosts.remove(hosts, "t1")


def test_unmatched_markers_are_refused_not_guessed(hosts: Path) -> None:
    hosts.write_text(ORIGINAL + "# >>> ecflow-remote t1 >>>\n127.77.5.1\tmachine1\n10.1.1.1\tusers-line\n")
    with pytest.raises(SystemHostsError, match="unmatched markers"):
        remove_block(hosts, "t1")
    with pytest.raises(SystemHostsError, match="unmatched markers"):
        add_block(hosts, "t1", MAP1)
    assert "users-line" in hosts.read_text()


@pytest.mark.parametrize(
    "mapping",
    [{"machine1": "not-an-ip"}, {"bad name": "127.0.0.1"}, {"x\n1.2.3.4 evil": "127.0.0.1"}, {"": "127.0.0.1"}],
)
def test_bad_entries_rejected(hosts: Path, mapping: dict[str, str]) -> None:
    with pytest.raises(SystemHostsError):
        add_block(hosts, "t1", mapping)
    assert hosts.read_text() == ORIGINAL


def test_bad_tag_rejected(hosts: Path) -> None:
    with pytest.raises(SystemHostsError):
        add_block(hosts, "a b", MAP1)


def test_shadowed_names(hosts: Path) -> None:
    hosts.write_text(ORIGINAL + "10.9.9.9\tmachine1\n")
    add_block(hosts, "t1", MAP1)
    assert systemhosts.shadowed(hosts, "t1", MAP1) == ["machine1"]


def test_missing_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    add_block(path, "t1", MAP2)
    assert has_block(path, "t1")
    remove_block(path, "t1")
    assert path.read_text() == ""


def test_hosts_path_env_is_for_tests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(systemhosts.PATH_ENV, raising=False)
    assert systemhosts.hosts_path() == Path("/etc/hosts")
    monkeypatch.setenv(systemhosts.PATH_ENV, str(tmp_path / "h"))
    assert systemhosts.hosts_path() == tmp_path / "h"


# ---------------------------------------------------------------------------------- programs: which view


def _plan(method: str) -> Plan:
    e = Endpoint("server", "machine1", "machine1", 4141, "127.77.5.1", 4141)
    return Plan(method, [e], hosts={"machine1": "127.77.5.1"})


def test_private_view_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECFLOW_REMOTE_PRIVATE_VIEW", "0")
    assert not view.private_view_available()
    monkeypatch.setenv("ECFLOW_REMOTE_PRIVATE_VIEW", "1")
    assert view.private_view_available()


def test_spawn_without_private_view_explains_the_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ECFLOW_REMOTE_PRIVATE_VIEW", "0")
    files = RunFiles(hosts=str(tmp_path / "hosts"), resolv=str(tmp_path / "resolv.conf"))
    with pytest.raises(LaunchError) as err:
        programs.spawn(["true"], _plan("hosts"), files, dict(os.environ))
    assert "local method" in str(err.value) and "system_hosts = true" in str(err.value)
    # local: the view only adds log-server names; the program runs without it.
    assert programs.spawn(["true"], _plan("local"), files, dict(os.environ)).wait() == 0
    # With the system file's block in place the names are there: no view needed.
    files = files.merged(RunFiles(system_hosts=str(tmp_path / "system-hosts")))
    assert programs.spawn(["true"], _plan("hosts"), files, dict(os.environ)).wait() == 0


# ------------------------------------------------------------------------------------------ the profile key

GOOD = '[gateway]\nhost = "user1@machine1"\n{extra}\n[[server]]\nname = "m1"\nhost = "machine1"\nport = 4141\n'


def test_profile_system_hosts_key(tmp_path: Path) -> None:
    from ecflow_remote.errors import ProfileError
    from ecflow_remote.profile.load import load_profile
    from ecflow_remote.profile.render import render_profile

    path = tmp_path / "p.toml"
    path.write_text(GOOD.format(extra=""))
    assert load_profile(path).gateway.system_hosts is False
    path.write_text(GOOD.format(extra="system_hosts = true"))
    assert load_profile(path).gateway.system_hosts is True
    path.write_text(GOOD.format(extra='system_hosts = "yes"'))
    with pytest.raises(ProfileError, match=r"true or false"):
        load_profile(path)
    assert "# system_hosts = true" in render_profile(None, "u@h", [("m1", "machine1", 4141)], [], "hosts")
