"""Addresses, ports and host names as every layer asks about them: loopback, a free local port, one host."""

from __future__ import annotations

import ipaddress
import socket


def is_loopback(host: str, *, by_name: bool = False) -> bool:
    """Is `host` a loopback address (127/8, ::1)? With by_name, `localhost` and names below it count too."""
    if by_name and (host == "localhost" or host.startswith("localhost.")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        # Without SO_REUSEADDR a port in TIME_WAIT after our own restart would look taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def same_host(a: str, b: str) -> bool:
    """ECF_LOGHOST may be fully qualified while the profile uses the short name, or the other way round."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.split(".", 1)[0] == b.split(".", 1)[0]
