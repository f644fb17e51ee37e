"""What the unit tests share: recorded samples (bytes and definitions from a real ecFlow 5.9.2) and the type of the
`serve` fixture (tests/unit/conftest.py)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).parent / "data"

# serve(on_connection) -> port: a server on 127.0.0.1 handing each connection to on_connection.
Serve = Callable[[Callable[[socket.socket], None]], int]

# A valid profile (method local) for the command-line tests: a broken environment or input must be what stops them.
LOCAL_PROFILE = """\
[gateway]
jump = "user1@jump"
host = "user1@machine1"
method = "local"

[[server]]
name = "machine1"
host = "machine1"
port = 4141

[[logserver]]
host = "logserver1"
port = 9316
"""
