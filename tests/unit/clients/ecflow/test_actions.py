"""Node action requests byte for byte against ecflow_client 5.9.2, and the server's refusals as clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecflow_remote.clients.ecflow import actions, commands, wire
from ecflow_remote.clients.ecflow.commands import Identity
from ecflow_remote.errors import ActionRefused, NodeActionError, UnknownPath

DATA = Path(__file__).parents[2] / "data"
ROOT = Identity("vm", "root")


# Captured from `ecflow_client --suspend /s/f/c`, `--requeue=force`, `--run`, `--force=complete|aborted`, `--kill`.
@pytest.mark.parametrize(
    ("action", "paths", "capture"),
    [
        ("suspend", ["/s/f/c"], "req_suspend"),
        ("resume", ["/s/f/c"], "req_resume"),
        ("requeue", ["/s/f/a"], "req_requeue"),
        ("execute", ["/s/f/c"], "req_execute"),
        ("complete", ["/s/f/c"], "req_complete"),
        ("abort", ["/s/f/d"], "req_abort"),
        ("kill", ["/s/f/a"], "req_kill"),
        ("suspend", ["/s/nope", "/s/f/b"], "req_suspend_unknown"),
        ("suspend", ["/s/f/c", "/s/f/d"], "req_suspend_two"),
    ],
)
def test_action_request_is_byte_identical_to_ecflow_client(action: str, paths: list[str], capture: str) -> None:
    request = actions.action_request(ROOT, actions.check_action(action), paths)
    assert wire.encode_frame(wire.encode_json(request)) == (DATA / f"{capture}_5.9.2.bin").read_bytes()


def test_custom_user_and_password_travel_with_the_action() -> None:
    identity = Identity("vm", "fred", commands.crypt_password("secret", "fred"), custom_user=True)
    body = wire.encode_json(actions.action_request(identity, "kill", ["/s/t"]))
    assert b'"user_": "fred",\n"pswd_": "frrkUcE9qDkFs",\n"cu_": true\n},\n"api_": 3' in body


def test_bad_action_and_paths_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="choose one of suspend, resume"):
        actions.check_action("delete")
    with pytest.raises(ValueError, match="absolute"):
        actions.check_paths(["s/t"])
    with pytest.raises(ValueError, match="at least one"):
        actions.check_paths([])
    assert actions.check_paths("/s/t") == ["/s/t"]


def test_unknown_path_reply_names_the_missing_paths() -> None:
    body = (DATA / "reply_unknown_path_5.9.2.bin").read_bytes()[wire.HEADER_SIZE :]
    with pytest.raises(commands.ServerError) as info:
        commands.decode_reply(wire.decode_json(body), "127.0.0.1:3141")
    error = actions.classify_server_error("127.0.0.1:3141", "suspend", ["/s/nope", "/s/f/b"], info.value.server_text)
    assert isinstance(error, UnknownPath)
    assert error.paths == ("/s/nope",)
    assert str(error) == "ecFlow server 127.0.0.1:3141: suspend /s/nope: no such node"
    # The other server texts for a missing node (RequeueNodeCmd, RunNodeCmd, ForceCmd) have no quotes.
    other = actions.classify_server_error(
        "h:1", "requeue", ["/a/b"], "RequeueNodeCmd: Could not find node at path /a/b\n"
    )
    assert isinstance(other, UnknownPath) and other.paths == ("/a/b",)


def test_refusals_and_other_errors_are_one_line() -> None:
    text = "[ authentication failed ] User 'x' is not allowed any access.\n"
    refused = actions.classify_server_error("h:1", "kill", ["/s/t"], text)
    assert isinstance(refused, ActionRefused)
    assert "\n" not in str(refused) and "h:1" in str(refused) and "/s/t" in str(refused)
    other = actions.classify_server_error("h:1", "execute", ["/s/t"], "RunNodeCmd failed: suite s must be 'begun'\n")
    assert type(other) is NodeActionError and "must be 'begun'" in str(other)
