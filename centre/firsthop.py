"""How the laptop reaches the jump host: directly, through a ProxyCommand, or through a local TCP relay.

Real first hops are often not a TCP connection to the jump host's address: Teleport's `tsh proxy ssh` is a local
process that ssh runs as its ProxyCommand and that relays ssh's bytes to the proxy; a VPN client, a corporate proxy
or a relay listens on a local port. Both hide the link's round trip from anything that times a handshake with the
first hop's address. Here either is a small relay on the laptop (the root namespace), the jump host behind it, over
the emulated home link; run by path (standard library only): `firsthop.py stdio HOST PORT` (a ProxyCommand) or
`firsthop.py listen PORT HOST PORT` (a relay on 127.0.0.1:PORT).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

KINDS = ("direct", "proxycommand", "relay")
CHUNK = 256 << 10


def ssh_block(kind: str, address: str, relay_port: int | None) -> str:
    """The ssh_config entry for the jump host, reached the `kind` way (the host name `jump` is what its host
    certificate names, so the ways through a relay keep it for the host key check)."""
    if kind == "direct":
        return f"Host jump\n    HostName {address}\n"
    if kind == "proxycommand":
        return f"Host jump\n    ProxyCommand {sys.executable} {__file__} stdio {address} 22\n"
    if kind == "relay":
        return f"Host jump\n    HostName 127.0.0.1\n    Port {relay_port}\n    HostKeyAlias jump\n"
    raise ValueError(f"first hop: one of {', '.join(KINDS)} (got {kind!r})")


def start_relay(address: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The local TCP relay in front of the jump host's sshd: its process and port on 127.0.0.1."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, "listen", "0", address, "22"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"first-hop relay did not start (see {log})")
    return proc, int(line)


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _pump(read: Callable[[int], bytes], write: Callable[[bytes], object], eof: Callable[[], object]) -> None:
    """Bytes from `read` to `write` until EOF (or an error), then `eof()` (a half-close passed on)."""
    with contextlib.suppress(OSError):
        while data := read(CHUNK):
            write(data)
    with contextlib.suppress(OSError):
        eof()


def _write_all(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


def stdio(host: str, port: int) -> None:
    """ssh's ProxyCommand: stdin to the jump host, the jump host to stdout."""
    sock = _connect(host, port)
    up = threading.Thread(
        target=_pump, args=(lambda n: os.read(0, n), sock.sendall, lambda: sock.shutdown(socket.SHUT_WR)), daemon=True
    )
    up.start()
    _pump(sock.recv, _write_all(1), lambda: os.close(1))


def listen(port: int, host: str, target_port: int) -> None:
    """A relay on 127.0.0.1:port: each connection gets its own to host:target_port."""
    server = socket.create_server(("127.0.0.1", port), backlog=64)
    threading.Thread(target=orphaned, args=(os.getppid(),), daemon=True).start()
    print(server.getsockname()[1], flush=True)
    while True:
        client, _ = server.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(client, host, target_port), daemon=True).start()


def orphaned(parent: int) -> None:
    """End with the Centre that started us (an interrupted run's cleanup only sees its namespaces, not this)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def serve(client: socket.socket, host: str, port: int) -> None:
    """Relay one accepted connection to host:port, both ways, each half-close passed on."""
    try:
        upstream = _connect(host, port)
    except OSError:
        client.close()
        return
    down = threading.Thread(
        target=_pump, args=(upstream.recv, client.sendall, lambda: client.shutdown(socket.SHUT_WR)), daemon=True
    )
    down.start()
    _pump(client.recv, upstream.sendall, lambda: upstream.shutdown(socket.SHUT_WR))
    down.join()
    client.close()
    upstream.close()


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "stdio":
        stdio(argv[1], int(argv[2]))
        return 0
    if len(argv) == 4 and argv[0] == "listen":
        listen(int(argv[1]), argv[2], int(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
