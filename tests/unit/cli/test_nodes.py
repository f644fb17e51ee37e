"""What `node` says on success, and that messages name a server as the profile does, not its tunnel address."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from tests.unit.samples import Serve

from ecflow_remote.cli.nodes import done_line
from ecflow_remote.clients.ecflow import wire
from ecflow_remote.clients.ecflow.actions import NODE_ACTIONS
from ecflow_remote.clients.ecflow.client import AsyncEcflowClient, EcflowClient
from ecflow_remote.errors import ServerError


def test_every_action_says_what_changed_on_which_server() -> None:
    assert done_line("suspend", "machine1", ["/lab/f1"]) == "Suspended /lab/f1 on machine1."
    assert done_line("resume", "machine1", ("/lab/f1", "/lab/f2")) == "Resumed /lab/f1, /lab/f2 on machine1."
    for action in NODE_ACTIONS:
        line = done_line(action, "machine1", ["/lab/f1/t"])
        assert "/lab/f1/t" in line and "machine1" in line and line.endswith((".", ")."))


def _error_reply(text: str) -> bytes:
    data = {"cereal_class_version": 0, "error_msg_": text}
    stc = {"polymorphic_id": 2147483649, "polymorphic_name": "ErrorCmd", "ptr_wrapper": {"id": 1, "data": data}}
    return wire.encode_frame(json.dumps({"22ServerToClientResponse": {"stc_cmd_": stc}}).encode())


@pytest.mark.parametrize("sync", [False, True])
def test_a_named_client_names_the_server_not_the_address(serve: Serve, sync: bool) -> None:
    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(_error_reply("File Cmd failed: no such file"))

    port = serve(answer)
    if sync:
        with pytest.raises(ServerError) as info:
            EcflowClient("127.0.0.1", port, name="machine1").file("/lab/f2/later")
    else:
        with pytest.raises(ServerError) as info:
            asyncio.run(AsyncEcflowClient("127.0.0.1", port, name="machine1").file("/lab/f2/later"))
    assert str(info.value) == "ecFlow server machine1 answered with an error: File Cmd failed: no such file"
    assert AsyncEcflowClient("127.0.0.1", port).where == f"127.0.0.1:{port}"  # unnamed: the address, as before
