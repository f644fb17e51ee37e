"""Requests to carry more services: the one document (ui/run → supervisor, finder → supervisor), request files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ecflow_remote.endpoints import Wanted
from ecflow_remote.tunnel import servicerequests


def test_requests_round_trip_and_bad_ones_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = servicerequests.write_request(tmp_path, [Wanted("server", "sys-m2", "machine2", 3142, ("/a",))])
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert servicerequests.decode(path.read_bytes()) == [Wanted("server", "sys-m2", "machine2", 3142, ("/a",))]
    with pytest.raises(ValueError, match="bad server name 'x y'"):
        servicerequests.decode(json.dumps({"version": 1, "servers": [{"name": "x y", "host": "h"}]}).encode())
    with pytest.raises(ValueError, match="bad port True"):
        servicerequests.decode(
            json.dumps({"version": 1, "servers": [{"name": "x", "host": "h", "port": True}]}).encode()
        )
    with pytest.raises(ValueError, match="over"):
        servicerequests.decode(b" " * (servicerequests.MAX_REQUEST + 1))
    with pytest.raises(ValueError, match="not a version 1 request"):
        servicerequests.decode(b'{"servers": []}')
    log = Wanted("logserver", "l:1", "l", 1, ("m /s",))
    assert servicerequests.decode(servicerequests.encode([log])) == [log]
    with pytest.raises(ValueError, match="bad kind 'ssh'"):
        servicerequests.decode(b'{"version": 1, "servers": [{"kind": "ssh", "name": "a", "host": "h", "port": 22}]}')


def test_a_request_file_waits_for_its_answer(tmp_path: Path) -> None:
    # (for a supervisor from before the inbox)
    assert servicerequests.ask_by_file(tmp_path, []) is True
    # Nobody answers: False, and the request is taken back.
    assert servicerequests.ask_by_file(tmp_path, [Wanted("server", "s", "h", 1)], timeout=0.1) is False
    assert list(tmp_path.iterdir()) == []
    # A supervisor gone: no wait at all.
    assert (
        servicerequests.ask_by_file(tmp_path, [Wanted("server", "s", "h", 1)], timeout=30, alive=lambda: False) is False
    )
