"""The master's side of OpenSSH's mux protocol for stdio forwards, as mux.c does it, in a thread: for unit tests."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ecflow_remote.transport import control


@dataclass
class Request:
    """What one control connection asked for and passed."""

    host: str
    port: int
    fds: list[int] = field(default_factory=list)


class FakeMaster:
    """Listens at `path`; on each control connection sends its HELLO, reads the client's packets with exact-length
        reads and the two fds after MUX_C_NEW_STDIO_FWD, then per `mode`: "open" answers SESSION_OPENED and echoes
        what is read from the first fd into the second until EOF, then closes both and the control connection (the
        channel ended); "refuse" answers MUX_S_FAILURE and closes the fds; "drop" closes without an answer; "hang" never
    answers (a master whose link is dead), until the client closes; "deny" answers as the master itself (a
    permission denied, no word from the far side). A control
        connection that closes while open ends the echo (mux_master_control_cleanup_cb)."""

    def __init__(self, path: Path, mode: str = "open") -> None:
        self.path = path
        self.mode = mode
        self.requests: list[Request] = []
        self.ended = threading.Event()  # set each time a forward's fds are closed
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.bind(str(path))
        self._sock.listen(64)  # as the master's (mux.c unix_listener backlog); a full queue refuses a handoff
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(control.packet(struct.pack(">II", control.MUX_MSG_HELLO, control.VERSION)))
            hello = _packet(conn)
            assert hello is not None and control.decode(hello) == control.MasterReply(control.MUX_MSG_HELLO, value=4)
            body = _packet(conn)
            if body is None:
                return
            kind, rid, reserved = struct.unpack_from(">III", body)
            assert kind == control.MUX_C_NEW_STDIO_FWD and reserved == 0
            (length,) = struct.unpack_from(">I", body, 12)
            host = body[16 : 16 + length].decode()
            (port,) = struct.unpack_from(">I", body, 16 + length)
            request = Request(host, port)
            self.requests.append(request)
            for _ in range(2):
                data, fds, _, _ = socket.recv_fds(conn, 1, 1)
                assert data == b"\0" and len(fds) == 1
                request.fds += fds
            if self.mode == "drop":
                _close(request.fds)
                return
            if self.mode == "hang":
                with contextlib.suppress(OSError):
                    while conn.recv(1):
                        pass
                _close(request.fds)
                return
            if self.mode == "deny":
                _close(request.fds)
                reason = b"Permission denied"
                kind = control.MUX_S_PERMISSION_DENIED
                conn.sendall(control.packet(struct.pack(">III", kind, rid, len(reason)) + reason))
                return
            if self.mode == "refuse":
                _close(request.fds)
                reason = b"Session open refused by peer"
                conn.sendall(control.packet(struct.pack(">III", control.MUX_S_FAILURE, rid, len(reason)) + reason))
                return
            conn.sendall(control.packet(struct.pack(">III", control.MUX_S_SESSION_OPENED, rid, 7)))
            self._echo(conn, *request.fds)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes _watch (a close would not while it waits in recv)

    def _echo(self, conn: socket.socket, rfd: int, wfd: int) -> None:
        client, out = socket.socket(fileno=rfd), socket.socket(fileno=wfd)
        threading.Thread(target=_watch, args=(conn, client), daemon=True).start()
        try:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    out.sendall(data)
        finally:
            client.close()
            out.close()
            self.ended.set()

    def close(self) -> None:
        self._sock.close()
        for thread in self._threads:
            thread.join(1)


def _watch(conn: socket.socket, client: socket.socket) -> None:
    """The control connection closed while the forward is open: the master ends the forward."""
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
        client.shutdown(socket.SHUT_RD)


def _packet(conn: socket.socket) -> bytes | None:
    head = conn.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    (length,) = struct.unpack(">I", head)
    return conn.recv(length, socket.MSG_WAITALL)


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            socket.socket(fileno=fd).close()


@contextlib.contextmanager
def fake_master(path: Path, mode: str = "open") -> Iterator[FakeMaster]:
    master = FakeMaster(path, mode)
    try:
        yield master
    finally:
        master.close()
