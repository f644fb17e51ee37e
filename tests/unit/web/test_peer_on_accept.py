"""The page server checks a connection's account on accept (issue 21): another account's is reset before a byte of
its request is parsed, as the relay and the other listeners do; our own gets its answer."""

from __future__ import annotations

import http.client
import subprocess

from tests.unit.access.other_account import as_nobody, needs_root
from tests.unit.web import test_server

from ecflow_remote.web.app import PageServer

page_server = test_server.page_server  # the same server, registered as this module's fixture too


def foreign_client(port: int, data: bytes) -> str:
    """What another account's client gets after sending `data`: 'reset' (at connect, send or read), 'eof', the
    bytes it read, or 'timeout' (the server waits for the rest of a request it is parsing)."""
    code = f"""
import socket
try:
    c = socket.create_connection(("127.0.0.1", {port}), timeout=5)
    c.sendall({data!r})
    got = c.recv(100)
    print(repr(got) if got else "eof")
except ConnectionResetError:
    print("reset")
except TimeoutError:
    print("timeout")
"""
    proc = subprocess.run(as_nobody(code), capture_output=True, text=True, timeout=30, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@needs_root
def test_another_account_is_reset_before_its_request_is_read(page_server: PageServer) -> None:
    server = page_server
    # Half a request: a server that parses before it checks would wait for the rest (and the client time out).
    assert foreign_client(server.guard.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1") == "reset"
    assert foreign_client(server.guard.port, f"GET /?token={server.guard.token} HTTP/1.1\r\n\r\n".encode()) == "reset"
    conn = http.client.HTTPConnection("127.0.0.1", server.guard.port, timeout=10)
    conn.request("GET", "/", headers={"Host": f"127.0.0.1:{server.guard.port}"})
    assert conn.getresponse().status == 401  # our own: answered (no token yet)
    conn.close()
