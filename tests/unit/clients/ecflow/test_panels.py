"""The panels' requests byte for byte against ecflow_client 5.9.2 (captured from the real client), their replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow import commands, panels, wire
from ecflow_remote.clients.ecflow.commands import Identity

DATA = Path(__file__).parents[2] / "data"
ROOT = Identity("vm", "root")
# The file given to `--edit_script=/s/t submit_file|pre_process_file ed.ecf` in the captures.
EDITED = "%comment - ecf user variables\nFOO = bar\nECF_TRIES = 2\n%end - ecf user variables\necho hi %FOO%\n"


def frame(request: dict[str, Any]) -> bytes:
    return wire.encode_frame(wire.encode_json(request))


@pytest.mark.parametrize(
    ("capture", "build"),
    [
        ("log_get", lambda: panels.log_request(ROOT, 50)),  # --log=get 50
        ("zombie_get", lambda: panels.zombies_request(ROOT)),  # --zombie_get
        ("zombie_fob", lambda: panels.zombie_action_request(ROOT, "fob", ["/s/t"])),  # --zombie_fob=/s/t
        ("zombie_fail", lambda: panels.zombie_action_request(ROOT, "fail", ["/s/t"])),
        ("zombie_adopt", lambda: panels.zombie_action_request(ROOT, "adopt", ["/s/t"])),
        ("zombie_remove", lambda: panels.zombie_action_request(ROOT, "remove", ["/s/t"])),
        ("zombie_kill", lambda: panels.zombie_action_request(ROOT, "kill", ["/s/t"])),
        # --alter change variable FOO bar /s/t, add ... FOO "b a r", delete variable FOO, change on /
        ("alter_change_variable", lambda: panels.alter_variable_request(ROOT, "change", ["/s/t"], "FOO", "bar")),
        ("alter_add_variable", lambda: panels.alter_variable_request(ROOT, "add", ["/s/t"], "FOO", "b a r")),
        ("alter_delete_variable", lambda: panels.alter_variable_request(ROOT, "delete", ["/s/t"], "FOO", "x")),
        ("alter_server_variable", lambda: panels.alter_variable_request(ROOT, "change", ["/"], "FOO", "bar")),
        ("edit_history", lambda: panels.edit_history_request(ROOT, "/s/t")),  # --edit_history=/s/t
        ("status", lambda: panels.status_request(ROOT, ["/s/t"])),  # --status=/s/t
        ("suites", lambda: panels.suites_request(ROOT)),  # --suites
        ("ch_register", lambda: panels.ch_register_request(ROOT, ["s1", "s2"])),  # --ch_register=false s1 s2
        ("ch_drop", lambda: panels.ch_drop_request(ROOT, 3)),  # --ch_drop=3
        # --edit_script=/s/t edit | pre_process | pre_process_file ed.ecf | submit_file ed.ecf [create_alias no_run]
        ("edit_script_edit", lambda: panels.edit_script_request(ROOT, "/s/t", panels.EDIT)),
        ("edit_script_pre_process", lambda: panels.edit_script_request(ROOT, "/s/t", panels.PREPROCESS)),
        (
            "edit_script_pre_process_file",
            lambda: panels.edit_script_request(ROOT, "/s/t", panels.PREPROCESS_USER_FILE, EDITED),
        ),
        (
            "edit_script_submit_file",
            lambda: panels.edit_script_request(ROOT, "/s/t", panels.SUBMIT_USER_FILE, EDITED),
        ),
        (
            "edit_script_submit_alias",
            lambda: panels.edit_script_request(ROOT, "/s/t", panels.SUBMIT_USER_FILE, EDITED, alias=True, run=False),
        ),
    ],
)
def test_panel_request_is_byte_identical_to_ecflow_client(capture: str, build: Any) -> None:
    assert frame(build()) == (DATA / f"req_{capture}_5.9.2.bin").read_bytes()


def test_used_variables_as_ecflow_client_extracts_them() -> None:
    lines = panels.script_lines(EDITED)
    assert panels.used_variables(lines) == [("ECF_TRIES", "2"), ("FOO", "bar")]
    # Only the first block; the first value of a name wins; nothing after %end, %manual or %nopp.
    text = "%comment\nB = 1\nA=2 = 3\nB = 9\n%end\n%comment\nC = 4\n%end\n"
    assert panels.used_variables(panels.script_lines(text)) == [("A", "2 = 3"), ("B", "1")]
    assert panels.used_variables(["%manual", "%comment", "X = 1"]) == []
    assert panels.script_lines("a\n\nb\n") == ["a", "", "b"] and panels.script_lines("a") == ["a"]


def test_bad_input_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="choose one of fob, fail, adopt, remove, kill"):
        panels.zombie_action_request(ROOT, "block", ["/s/t"])
    with pytest.raises(ValueError, match="changed, added or deleted"):
        panels.alter_variable_request(ROOT, "rename", ["/s/t"], "A", "b")
    with pytest.raises(ValueError, match="one word"):
        panels.alter_variable_request(ROOT, "add", ["/s/t"], "A B", "b")
    with pytest.raises(ValueError, match="needs its text"):
        panels.edit_script_request(ROOT, "/s/t", panels.SUBMIT_USER_FILE)
    with pytest.raises(ValueError, match="positive"):
        panels.log_request(ROOT, 0)


def test_zombie_reply_of_a_real_server() -> None:
    # A second `--init` of /s/f/t with another password and pid, listed by ecflow_server 5.9.2.
    body = (DATA / "reply_zombies_5.9.2.bin").read_bytes()[wire.HEADER_SIZE :]
    (zombie,) = panels.expect_zombies(commands.decode_reply(wire.decode_json(body)))
    assert zombie.path == "/s/f/t" and zombie.type == "ecf" and zombie.user_action == "auto-block"
    assert (zombie.pid, zombie.try_no, zombie.child_cmd, zombie.host) == ("4242", 1, "init", "vm")
    assert "wrongpw" not in repr(zombie)  # the job password is not kept


def test_wrong_reply_kinds_are_protocol_errors() -> None:
    reply = commands.Reply("StcCmd", {"api_": 0})
    with pytest.raises(commands.ProtocolError, match="expected ZombieGetCmd"):
        panels.expect_zombies(reply)
    with pytest.raises(commands.ProtocolError, match="expected SStringVecCmd"):
        panels.expect_string_list(reply)
