"""Nothing another local account can steer (issue 21): played by `nobody` (uid 65534, via setpriv and chown), the
profile swapped under the reader, and password files and ssh configs it owns, can write or links, are refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecflow_remote.access.passwords import read_password
from ecflow_remote.errors import PasswordError, ProfileError
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import PasswordSource

NOBODY = 65534
pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(),
    reason="plays another account: Linux, root, setpriv",
)
PROFILE = (
    '[gateway]\nhost = "user1@machine1"\n{extra}\n[[server]]\nname = "m1"\nhost = "machine1"\nport = 4141\n{server}'
)

# The other account's loop: flip cur/p.toml between root's harmless profile and its own, as fast as it can.
FLIPPER = """
import os, sys
cur, harmless, evil = sys.argv[1:4]
link, tmp = os.path.join(cur, "p.toml"), os.path.join(cur, "p.tmp")
i = 0
while True:
    i += 1
    if i == 3:
        print("flipping", flush=True)
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(evil if i % 2 else harmless, tmp)
    os.rename(tmp, link)
"""


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory that both root and nobody reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="ecflow-remote-trust-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _nobodys_dir(shared: Path, name: str) -> Path:
    path = shared / name
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY, NOBODY)
    return path


def test_a_profile_swapped_under_the_reader_never_runs_its_login(shared: Path) -> None:
    harmless = shared / "harmless.toml"
    harmless.write_text(PROFILE.format(extra='login = "true"', server=""))
    marker = shared / "x"
    cur = _nobodys_dir(shared, "cur")
    evil = cur / "evil.toml"
    evil.write_text(PROFILE.format(extra=f'login = "touch {marker}"', server=""))
    os.chown(evil, NOBODY, NOBODY)
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-c", FLIPPER]
    with subprocess.Popen([*argv, str(cur), str(harmless), str(evil)], stdout=subprocess.PIPE, text=True) as flip:
        try:
            assert flip.stdout is not None and flip.stdout.readline() == "flipping\n"
            seen: set[str] = set()
            refused = 0
            for _ in range(300):
                seen.add(os.readlink(cur / "p.toml"))
                try:
                    profile = load_profile(cur / "p.toml")
                except ProfileError as exc:
                    assert f"which belongs to nobody (uid {NOBODY})" in str(exc) and "\n" not in str(exc)
                    refused += 1
                else:
                    pytest.fail(f"loaded through nobody's directory: login {profile.gateway.login!r}")
            assert seen == {str(harmless), str(evil)}, "the other account's loop did not flip the link"
            assert refused == 300
            # The command itself, a few dozen times: its login never runs.
            for _ in range(20):
                done = subprocess.run(
                    [sys.executable, "-m", "ecflow_remote", "--profile", str(cur / "p.toml"), "login"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                )
                assert done.returncode != 0 and "belongs to nobody" in done.stderr, done.stderr
                assert "Traceback" not in done.stderr
            assert not marker.exists()
        finally:
            flip.kill()


def _password_profile(shared: Path, pw: Path) -> Path:
    path = shared / "profile.toml"
    server = f'custom_user = "me"\npassword = "file:{pw}"\n'
    path.write_text(PROFILE.format(extra="", server=server))
    return path


def _owned_by_nobody(shared: Path) -> Path:
    pw = shared / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    os.chown(pw, NOBODY, NOBODY)
    return pw


def _link_by_nobody(shared: Path) -> Path:
    mine = shared / "mine"
    mine.write_text("s3cret\n")
    mine.chmod(0o600)
    link = _nobodys_dir(shared, "theirs") / "pw"
    os.symlink(mine, link)
    os.lchown(link, NOBODY, NOBODY)
    return link


def _link_of_mine(shared: Path) -> Path:
    mine = shared / "mine"
    mine.write_text("s3cret\n")
    mine.chmod(0o600)
    link = shared / "pw"
    os.symlink(mine, link)
    return link


def _in_writable_dir(shared: Path) -> Path:
    loose = shared / "loose"
    loose.mkdir()
    loose.chmod(0o777)  # not sticky: anyone may rename the file away and put theirs
    pw = loose / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    return pw


PASSWORD_FILES = [
    pytest.param(_owned_by_nobody, r"pw belongs to nobody \(uid 65534\), not to you", id="owned-by-nobody"),
    pytest.param(_link_by_nobody, r"is in .*/theirs, which belongs to nobody \(uid 65534\)", id="nobodys-link"),
    pytest.param(_link_of_mine, r"pw is a symbolic link \(made by root \(uid 0\)\)", id="a-link"),
    pytest.param(_in_writable_dir, r"is in .*/loose, which other accounts can change \(mode 0777\)", id="loose-dir"),
]


@pytest.mark.parametrize(("make", "words"), PASSWORD_FILES)
def test_password_files_others_can_steer_are_refused(shared: Path, make: object, words: str) -> None:
    assert callable(make)
    pw = make(shared)
    with pytest.raises(PasswordError, match=words) as read:
        read_password(PasswordSource("file", str(pw), "me"))
    assert str(read.value).startswith(f"the password file {pw} ") and "s3cret" not in str(read.value)
    profile = _password_profile(shared, pw)
    with pytest.raises(ProfileError, match=words) as load:
        load_profile(profile)
    text = str(load.value)
    assert text.startswith(f"{profile}:") and "server[1].password" in text and "\n" not in text


def test_a_missing_password_file_is_named(shared: Path) -> None:
    with pytest.raises(PasswordError, match=f"the password file {shared / 'gone'} does not exist"):
        read_password(PasswordSource("file", str(shared / "gone"), "me"))


def _config_by_nobody(shared: Path) -> Path:
    config = shared / "ssh_config"
    config.write_text("Host *\n  ServerAliveInterval 3\n")
    os.chown(config, NOBODY, NOBODY)
    return config


def _config_link_by_nobody(shared: Path) -> Path:
    config = shared / "mine_config"
    config.write_text("Host *\n  ServerAliveInterval 3\n")
    link = _nobodys_dir(shared, "theirs") / "ssh_config"
    os.symlink(config, link)
    os.lchown(link, NOBODY, NOBODY)
    return link


def _config_in_writable_dir(shared: Path) -> Path:
    loose = shared / "loose"
    loose.mkdir()
    loose.chmod(0o775)
    config = loose / "ssh_config"
    config.write_text("Host *\n  ServerAliveInterval 3\n")
    return config


def _config_including_nobodys(shared: Path) -> Path:
    theirs = _nobodys_dir(shared, "theirs") / "extra.conf"
    theirs.write_text("Host *\n  ProxyCommand touch /tmp/x\n")
    os.chown(theirs, NOBODY, NOBODY)
    config = shared / "ssh_config"
    config.write_text(f"Host m1\n  Include {shared}/theirs/*.conf\n")
    return config


SSH_CONFIGS = [
    pytest.param(
        _config_including_nobodys,
        r"includes .*/theirs/extra.conf, which is in .*/theirs, which belongs to nobody",
        id="includes-nobodys",
    ),
    pytest.param(_config_by_nobody, r"belongs to another account, nobody \(uid 65534\)", id="owned-by-nobody"),
    pytest.param(_config_link_by_nobody, r"is in .*/theirs, which belongs to nobody \(uid 65534\)", id="nobodys-link"),
    pytest.param(_config_in_writable_dir, r"which other accounts can change \(mode 0775\)", id="group-writable-dir"),
]


@pytest.mark.parametrize(("make", "words"), SSH_CONFIGS)
def test_ssh_configs_others_can_steer_are_refused(shared: Path, make: object, words: str) -> None:
    assert callable(make)
    config = make(shared)
    profile = shared / "profile.toml"
    profile.write_text(PROFILE.format(extra=f'ssh_config = "{config}"', server=""))
    with pytest.raises(ProfileError, match=words) as load:
        load_profile(profile)
    text = str(load.value)
    assert text.startswith(f"{profile}:3: gateway.ssh_config: {config} ") and "ProxyCommand" in text
    assert "\n" not in text


def test_a_link_of_your_own_in_safe_directories_is_followed(shared: Path) -> None:
    """Dotfile managers link ~/.config files: a link in directories only you (or root) can change is kept."""
    real = shared / "real.toml"
    real.write_text(PROFILE.format(extra="", server=""))
    (shared / "link.toml").symlink_to(real)
    assert load_profile(shared / "link.toml").gateway.host.host == "machine1"


@pytest.mark.parametrize("how", ["nobodys", "group-writable"])
def test_an_ecflow_ui_config_dir_others_can_change_is_not_copied(shared: Path, how: str) -> None:
    """Its files say what ecflow_ui runs (custom commands): never seeded from a directory others can change."""
    from ecflow_remote.errors import UiError
    from ecflow_remote.plan import plan_for
    from ecflow_remote.ui import confdir

    own = shared / "own_ui"
    own.mkdir()
    (own / "servers.txt").write_text("")
    if how == "nobodys":
        os.chown(own, NOBODY, NOBODY)
        words = r"belongs to nobody \(uid 65534\)"
    else:
        own.chmod(0o775)
        words = r"can be changed by other accounts \(mode 0775\)"
    profile = shared / "profile.toml"
    profile.write_text(PROFILE.format(extra="", server=""))
    dest = shared / "data" / "ui"
    loaded = load_profile(profile)
    with pytest.raises(UiError, match=rf"config dir {own} {words}, so it is not copied") as info:
        confdir.prepare_config(dest, loaded, plan_for(loaded), own)
    assert "\n" not in str(info.value) and not dest.exists()
    own.chmod(0o755)
    os.chown(own, 0, 0)
    assert confdir.prepare_config(dest, loaded, plan_for(loaded), own).path == dest
