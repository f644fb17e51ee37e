"""The Centre's TLS front before an HTTP ecFlow server: what makes a server `https`.

ecflow_server 5.19 serves `--http` in clear only (ServerMain.cpp: "On the server side, we actually only support
HTTP"; its HTTP session is a plain TCP stream), while ecflow_client `--https` and ecflow_ui's protocol 3 speak HTTP
inside TLS: a site offers https with a TLS-terminating proxy in front. Here that proxy is this small relay (Python's
ssl, i.e. OpenSSL), run in the server host's namespace with the servers' account's server.crt and server.key:
`python -m centre.tlsfront ADDRESS PORT TARGET_PORT CERT KEY`.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading

from centre.firsthop import orphaned, serve


def _handshake(ctx: ssl.SSLContext, client: socket.socket, address: str, target: int) -> None:
    try:
        tls = ctx.wrap_socket(client, server_side=True)
    except (OSError, ssl.SSLError) as e:
        print(f"handshake refused: {e}", file=sys.stderr, flush=True)
        client.close()
        return
    serve(tls, address, target)


def listen(address: str, port: int, target: int, cert: str, key: str) -> None:
    """TLS on address:port; each connection's clear bytes to address:target."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = socket.create_server((address, port), backlog=64)
    threading.Thread(target=orphaned, args=(os.getppid(),), daemon=True).start()
    while True:
        client, _ = server.accept()
        threading.Thread(target=_handshake, args=(ctx, client, address, target), daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    listen(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
