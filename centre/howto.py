"""The how-to's manual commands (raw `ssh -J … -N -L` and `ssh -D`): the baseline for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from centre.centre import Centre


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"ssh exited with {proc.returncode} before 127.0.0.1:{port} listened") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"127.0.0.1:{port} not listening after {timeout}s") from None
            time.sleep(0.02)


@dataclass
class RawTunnel:
    """One raw ssh process, as a user of the how-to runs it by hand; stop() kills its whole process group."""

    argv: list[str]
    forwards: dict[tuple[str, int], int] = field(default_factory=dict)  # (centre host, port) -> local port
    socks_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> RawTunnel:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 (ssh keeps it open)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
        for port in [*self.forwards.values(), *([self.socks_port] if self.socks_port else [])]:
            wait_listening(port, self.proc)
        return self

    def endpoint(self, host: str, port: int) -> tuple[str, int]:
        return "127.0.0.1", self.forwards[(host, port)]

    @property
    def address(self) -> tuple[str, int]:
        assert self.socks_port is not None
        return "127.0.0.1", self.socks_port

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # ProxyJump starts a second ssh in the same group: kill the group, not just the parent.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> RawTunnel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ssh_base(centre: Centre, compression: bool = False) -> list[str]:
    argv = [
        "ssh",
        "-F",
        str(centre.ssh_config),
        "-J",
        centre.jump,
        centre.workstation,
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "BatchMode=yes",
    ]
    return [*argv, "-C"] if compression else argv


def local_forward(centre: Centre, compression: bool = False) -> RawTunnel:
    """Method 1: every server and log server forwarded to a free local port."""
    tunnel = RawTunnel(ssh_base(centre, compression), log=centre.base / "raw-local.log")
    targets = [(s.host, s.port) for s in centre.servers] + [(lg.host, lg.port) for lg in centre.logservers]
    for host, port in targets:
        local = free_port()
        tunnel.forwards[(host, port)] = local
        tunnel.argv += ["-L", f"127.0.0.1:{local}:{host}:{port}"]
    return tunnel


def socks_proxy(centre: Centre, compression: bool = False) -> RawTunnel:
    """Method 2: `ssh -D` on a free local port."""
    port = free_port()
    return RawTunnel(
        [*ssh_base(centre, compression), "-D", f"127.0.0.1:{port}"],
        socks_port=port,
        log=centre.base / "raw-socks.log",
    )
