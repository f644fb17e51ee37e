"""The system hosts file is changed byte-exactly (CRLF and non-UTF-8 bytes kept), one editor at a time, with a
fresh backup each time; the printed sudo command imports nothing from the current directory."""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ecflow_remote.hosts import system as systemhosts
from ecflow_remote.hosts.system import add_block, remove_block

MAP1 = {"machine1": "127.77.5.1"}
MAP2 = {"machine2": "127.77.9.1"}

# Files as users have them, and the file after a block was added and removed: every byte outside the block is kept
# (a missing final newline is added, in the file's own line ending, so that the block starts on a line of its own).
ODD_FILES = [
    pytest.param(b"127.0.0.1\tlocalhost\r\n10.0.0.5\tprinter\r\n", None, id="crlf"),
    pytest.param(b"127.0.0.1\tlocalhost\r\n10.0.0.5\tprinter", b"\r\n", id="crlf-no-final-newline"),
    pytest.param(b"127.0.0.1\tlocalhost\n10.0.0.9\tcaf\xe9  # latin-1 comment \xff\n", None, id="not-utf8"),
    pytest.param(b"127.0.0.1\tcaf\xc3\xa9\n::1 ip6-localhost\n", None, id="utf8"),
    pytest.param(b"127.0.0.1 localhost\n\n\n# trailing blank lines\n\n", None, id="blank-lines"),
    pytest.param(b"127.0.0.1 localhost", b"\n", id="no-final-newline"),
    pytest.param(b"", None, id="empty"),
]


@pytest.mark.parametrize(("original", "added_ending"), ODD_FILES)
def test_bytes_outside_the_block_are_kept(tmp_path: Path, original: bytes, added_ending: bytes | None) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_bytes(original)
    assert add_block(hosts, "t1", MAP1)
    kept = original + (added_ending or b"")
    assert hosts.read_bytes().startswith(kept)
    assert systemhosts.tags(hosts) == ["t1"]
    if original:
        assert hosts.with_name("hosts.ecflow-remote.bak").read_bytes() == original
    assert remove_block(hosts, "t1")
    assert hosts.read_bytes() == kept


def test_a_crlf_file_gets_a_crlf_block(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"127.0.0.1\tlocalhost\r\n")
    add_block(hosts, "t1", MAP1)
    block = hosts.read_bytes()[len(b"127.0.0.1\tlocalhost\r\n") :]
    assert block.count(b"\r\n") == block.count(b"\n") == 4
    assert b"127.77.5.1\tmachine1\r\n" in block
    assert not add_block(hosts, "t1", MAP1)  # found in place, CRLF and all


def test_the_backup_is_refreshed_with_the_users_own_edits(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    add_block(hosts, "t1", MAP1)
    with hosts.open("a") as f:
        f.write("192.0.2.7 added-later\n")
    add_block(hosts, "t2", MAP2)
    assert hosts.with_name("hosts.ecflow-remote.bak").read_text() == "127.0.0.1 localhost\n192.0.2.7 added-later\n"


def test_two_editors_at_once_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tunnels add their blocks at the same moment: each read-change-write waits for the other's."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    real_write = systemhosts._write

    def slow_write(path: Path, text: str, original: str) -> None:
        time.sleep(0.3)  # a wide window between reading the file and replacing it
        real_write(path, text, original)

    monkeypatch.setattr(systemhosts, "_write", slow_write)
    errors: list[BaseException] = []

    def edit(tag: str, mapping: dict[str, str]) -> None:
        try:
            add_block(hosts, tag, mapping)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=edit, args=args) for args in (("t1", MAP1), ("t2", MAP2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(systemhosts.tags(hosts)) == ["t1", "t2"]


def test_a_held_lock_is_a_clear_error_not_a_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    monkeypatch.setattr(systemhosts, "LOCK_WAIT", 0.2)
    with open(tmp_path / "hosts.ecflow-remote.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(systemhosts.SystemHostsError, match="being changed by another ecflow-remote"):
            add_block(hosts, "t1", MAP1)
    assert hosts.read_text() == "127.0.0.1 localhost\n"


def test_the_sudo_command_imports_nothing_from_the_current_directory(tmp_path: Path) -> None:
    """A package planted where the user stands must not run (as root, under sudo)."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    planted = tmp_path / "cwd"
    (planted / "ecflow_remote").mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    (planted / "ecflow_remote" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    hint = systemhosts.sudo_hint(hosts, "t1", MAP1)
    argv = shlex.split(hint)
    assert argv[0] == "sudo" and argv[2] == "-I"
    proc = subprocess.run(argv[1:], cwd=planted, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert systemhosts.has_block(hosts, "t1")
