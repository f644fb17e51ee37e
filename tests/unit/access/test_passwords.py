"""access/passwords.py: each way a password cannot be read gets its own message, never with the secret; the one
failure rule (a warning naming the server, the others still read)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from ecflow_remote.access import passwords
from ecflow_remote.access.passwords import read_password, read_passwords, read_passwords_warned
from ecflow_remote.errors import PasswordError, PasswordWarning
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import PasswordSource

SECRET = "s3cret"


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    source = PasswordSource("env", "ECF_TEST_PW")
    monkeypatch.setenv("ECF_TEST_PW", SECRET)
    assert read_password(source) == SECRET
    assert SECRET not in repr(source)
    monkeypatch.setenv("ECF_TEST_PW", "")
    with pytest.raises(PasswordError, match=r"\$ECF_TEST_PW is empty"):
        read_password(source)
    monkeypatch.delenv("ECF_TEST_PW")
    with pytest.raises(PasswordError, match=r"\$ECF_TEST_PW is not set\. Export it"):
        read_password(source)


def _file(tmp_path: Path, content: bytes, mode: int = 0o600) -> PasswordSource:
    path = tmp_path / "pw"
    path.write_bytes(content)
    path.chmod(mode)
    return PasswordSource("file", str(path))


def test_file(tmp_path: Path) -> None:
    assert read_password(_file(tmp_path, b"s3cret\n")) == SECRET
    assert read_password(_file(tmp_path, b"s3cret\r\n")) == SECRET
    assert read_password(_file(tmp_path, "pässwörd".encode())) == "pässwörd"
    with pytest.raises(PasswordError, match=r"is empty\. Write the password into it"):
        read_password(_file(tmp_path, b"\n"))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    source = _file(tmp_path, b"s3cret\n", mode)
    with pytest.raises(PasswordError) as info:
        read_password(source)
    assert f"(mode {mode:04o}): refused. Run: chmod 600 {source.ref}" in str(info.value)
    assert SECRET not in str(info.value)


def test_file_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(PasswordError, match="is not UTF-8 text") as info:
        read_password(_file(tmp_path, b"s3cr\xe9t\n"))
    assert "s3cr" not in str(info.value)


def test_file_too_big(tmp_path: Path) -> None:
    with pytest.raises(PasswordError, match="is bigger than 65536 bytes"):
        read_password(_file(tmp_path, b"x" * (passwords.MAX_PASSWORD_BYTES + 1)))


def test_file_missing_or_not_regular(tmp_path: Path) -> None:
    with pytest.raises(PasswordError, match=r"does not exist\. Create it \(chmod 600\)"):
        read_password(PasswordSource("file", str(tmp_path / "nope")))
    with pytest.raises(PasswordError, match="not a regular file"):
        read_password(PasswordSource("file", str(tmp_path)))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(PasswordError, match="not a regular file"):
        read_password(PasswordSource("file", str(fifo)))  # must not hang


def test_file_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _file(tmp_path, b"s3cret\n")

    # chmod 0 does not stop root (the tests may run as root), so the refusal is the kernel's answer, simulated.
    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(passwords.os, "open", refuse)
    with pytest.raises(PasswordError, match="cannot be read: permission denied"):
        read_password(source)


def test_keyring_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` raise ImportError
    with pytest.raises(PasswordError, match=r"pip install 'ecflow-remote\[keyring\]'"):
        read_password(PasswordSource("keyring", "ecflow", "me"))


def _fake_keyring(monkeypatch: pytest.MonkeyPatch, store: dict[tuple[str, str], str] | Exception) -> None:
    module = types.ModuleType("keyring")

    def get_password(service: str, username: str) -> str | None:
        if isinstance(store, Exception):
            raise store
        return store.get((service, username))

    module.get_password = get_password  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", module)


def test_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_keyring(monkeypatch, {("ecflow", "me"): SECRET})
    assert read_password(PasswordSource("keyring", "ecflow", "me")) == SECRET
    with pytest.raises(PasswordError, match=r"no password for service 'ecflow', user 'you'\. Store it: keyring set"):
        read_password(PasswordSource("keyring", "ecflow", "you"))
    _fake_keyring(monkeypatch, RuntimeError("No recommended backend was available"))
    with pytest.raises(PasswordError, match="RuntimeError: No recommended backend"):
        read_password(PasswordSource("keyring", "ecflow", "me"))


# ------------------------------------------------------------------------------------------- the failure rule


def _profile(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(
        '[gateway]\nhost = "u@ws"\n'
        '[[server]]\nname = "plain"\nhost = "m0"\nport = 4140\n'
        '[[server]]\nname = "a"\nhost = "m1"\nport = 4141\ncustom_user = "bob"\npassword = "env:ECFR_PW_A"\n'
        '[[server]]\nname = "b"\nhost = "m2"\nport = 4142\ncustom_user = "bob"\npassword = "file:pw_b"\n'
    )
    return path


def test_read_passwords_warns_per_server_and_reads_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_profile(_profile(tmp_path))
    monkeypatch.setenv("ECFR_PW_A", SECRET)
    got, problems = read_passwords(profile)
    assert got == {"a": SECRET}
    assert problems == [
        f"server b: password not read, its requests go without one: the password file {tmp_path / 'pw_b'} "
        "does not exist. Create it (chmod 600)."
    ]
    (tmp_path / "pw_b").write_text("other\n")
    (tmp_path / "pw_b").chmod(0o600)
    monkeypatch.delenv("ECFR_PW_A")
    got, problems = read_passwords(profile)
    assert got == {"b": "other"}
    assert len(problems) == 1 and problems[0].startswith("server a: ") and "$ECFR_PW_A is not set" in problems[0]
    # Only the servers asked for are read.
    assert read_passwords(profile, ["b"]) == ({"b": "other"}, [])
    assert read_passwords(profile, ["plain"]) == ({}, [])


def test_read_passwords_warned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_profile(_profile(tmp_path))
    monkeypatch.setenv("ECFR_PW_A", "")
    with pytest.warns(PasswordWarning, match=r"^server a: .*\$ECFR_PW_A is empty") as caught:
        passwords, problems = read_passwords_warned(profile, ["a"])
    assert passwords == {} and problems == [str(w.message) for w in caught]
    assert caught[0].filename == __file__  # stacklevel: the warning points at the caller


def test_password_variables_handed_over_through_a_pipe_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` hands the profile's set password variables to the supervisor (and it to the finder) as one line on a
    pipe: the child reads them from there, with none in its environment; nothing else of the environment goes."""
    import io

    profile = load_profile(_profile(tmp_path))
    monkeypatch.setenv("ECFR_PW_A", SECRET)
    monkeypatch.setenv("UNRELATED", "x")
    assert passwords.variables_of(profile) == {"ECFR_PW_A": SECRET}
    pipe = io.BytesIO()
    passwords.hand_over(profile, pipe)
    assert pipe.getvalue().count(b"\n") == 1 and b"UNRELATED" not in pipe.getvalue()
    monkeypatch.delenv("ECFR_PW_A")
    monkeypatch.setattr(passwords, "_HANDED", {})
    with pytest.raises(PasswordError, match="is not set"):
        read_password(PasswordSource("env", "ECFR_PW_A"))
    pipe.seek(0)
    passwords.take_over(pipe)
    assert read_password(PasswordSource("env", "ECFR_PW_A")) == SECRET
    assert "ECFR_PW_A" not in os.environ
    # Handed on by a child that has it only from the pipe (the supervisor to the finder).
    again = io.BytesIO()
    passwords.hand_over(profile, again)
    assert again.getvalue() == pipe.getvalue()
    # A line that is not a JSON object of strings hands over nothing.
    monkeypatch.setattr(passwords, "_HANDED", {})
    for junk in (b"not json\n", b"[1, 2]\n", b'{"ECFR_PW_A": 3}\n', b""):
        passwords.take_over(io.BytesIO(junk))
        assert passwords._HANDED == {}
