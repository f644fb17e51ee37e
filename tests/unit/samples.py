"""What the unit tests share: recorded samples (bytes and definitions from a real ecFlow 5.9.2) and the type of the
`serve` fixture (tests/unit/conftest.py)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).parent / "data"

# serve(on_connection) -> port: a server on 127.0.0.1 handing each connection to on_connection.
Serve = Callable[[Callable[[socket.socket], None]], int]
