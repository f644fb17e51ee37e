"""Files that make ecflow-remote run commands must be the user's and writable by nobody else; a `login` that cannot
be split is refused at load, naming file, line and key."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ecflow_remote.errors import ProfileError
from ecflow_remote.profile.load import load_profile

GOOD = '[gateway]\nhost = "user1@machine1"\n{extra}\n[[server]]\nname = "m1"\nhost = "machine1"\nport = 4141\n'
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to another uid: needs root")


def _write(tmp_path: Path, extra: str = "", mode: int = 0o644) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(GOOD.format(extra=extra))
    path.chmod(mode)
    return path


def _give_away(path: Path) -> None:
    os.chown(path, 65534, 65534)


# (mode, a change made to the file, the words of the refusal or None when it is fine)
PROFILE_FILES = [
    pytest.param(0o666, None, r"can be changed by other accounts \(mode 0666\).*chmod go-w", id="world-writable"),
    pytest.param(0o664, None, r"\(mode 0664\)", id="group-writable"),
    pytest.param(0o602, None, r"\(mode 0602\)", id="other-writable-only"),
    pytest.param(
        0o644, _give_away, r"belongs to another account, nobody \(uid 65534\)", marks=needs_root, id="not-ours"
    ),
    pytest.param(0o644, None, None, id="0644"),
    pytest.param(0o600, None, None, id="0600"),
    pytest.param(0o400, None, None, id="read-only"),
]


@pytest.mark.parametrize(("mode", "change", "words"), PROFILE_FILES)
def test_profile_owner_and_mode(
    tmp_path: Path, mode: int, change: Callable[[Path], None] | None, words: str | None
) -> None:
    path = _write(tmp_path, mode=mode)
    if change is not None:
        change(path)
    if words is None:
        assert load_profile(path).gateway.host.host == "machine1"
        return
    with pytest.raises(ProfileError, match=words) as info:
        load_profile(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "runs commands as you" in text and "\n" not in text


@pytest.mark.parametrize(("mode", "change", "words"), PROFILE_FILES)
def test_ssh_config_owner_and_mode(
    tmp_path: Path, mode: int, change: Callable[[Path], None] | None, words: str | None
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  ServerAliveInterval 3\n")
    config.chmod(mode)
    if change is not None:
        change(config)
    path = _write(tmp_path, f'ssh_config = "{config}"')
    if words is None:
        assert load_profile(path).gateway.ssh_config == config
        return
    with pytest.raises(ProfileError, match=words) as info:
        load_profile(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3: gateway.ssh_config: {config} ") and "ProxyCommand" in text


BAD_LOGINS = [
    pytest.param("tsh login --proxy='jump", "No closing quotation", id="open-single-quote"),
    pytest.param('tsh login --proxy=\\"jump', "No closing quotation", id="open-double-quote"),
    pytest.param("tsh login \\\\", "No escaped character", id="trailing-backslash"),
    pytest.param("", "is empty", id="empty"),
    pytest.param("   ", "is empty", id="blank"),
    pytest.param("tsh login\\nrm -rf ~", "must be one line", id="two-lines"),
]


@pytest.mark.parametrize(("login", "words"), BAD_LOGINS)
def test_a_login_that_cannot_be_split_is_refused_at_load(tmp_path: Path, login: str, words: str) -> None:
    path = _write(tmp_path, f'login = "{login}"')
    with pytest.raises(ProfileError, match=words) as info:
        load_profile(path)
    assert str(info.value).startswith(f"{path}:3: gateway.login: ")


@pytest.mark.parametrize("login", ["tsh login --proxy=jump", "sh -c 'tsh login && echo ok'", 'a "b c" d'])
def test_good_logins_load(tmp_path: Path, login: str) -> None:
    escaped = login.replace('"', '\\"')
    assert load_profile(_write(tmp_path, f'login = "{escaped}"')).gateway.login == login


def test_included_files_resolve_as_openssh_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative Include paths are under ~/.ssh (even in a -F file elsewhere), ~ is expanded, globs are sorted."""
    from ecflow_remote.profile.trust import included_files

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh" / "conf.d").mkdir(parents=True)
    for name in ("b.conf", "a.conf", "x.txt"):
        (tmp_path / ".ssh" / "conf.d" / name).write_text("")
    (tmp_path / "abs").write_text("")
    text = "Include conf.d/*.conf\n  include=~/abs  # mine\nHost x\n  Include missing\n"
    assert included_files(text) == [
        tmp_path / ".ssh/conf.d/a.conf",
        tmp_path / ".ssh/conf.d/b.conf",
        tmp_path / "abs",
    ]
