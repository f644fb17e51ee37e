"""ssh's own forwards to private unix sockets, added to the running main leg through its control socket (`ssh -S
main.sock -O forward`): beside the agent at start, and for endpoints that join a running tunnel (either transport)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ecflow_remote.access import pipe, relay
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh

ADD_TIMEOUT = 10.0  # a control request is local and answered in milliseconds; a master that hangs is not waited on


def sockets_for(rundir: Path, endpoints: Sequence[Endpoint]) -> dict[tuple[str, int], Path]:
    """The unix socket (in the 0700 run directory) ssh forwards each endpoint's Centre host:port to."""
    return {(e.host, e.port): relay.socket_path(rundir, f"{e.host}:{e.port}") for e in endpoints}


def direct(upstreams: pipe.Upstreams) -> dict[tuple[str, int], Path]:
    """ssh's forward sockets the supervisor's own clients (health checks, the finder) may connect to straight: all
    of them while ssh's channels carry new connections (also with the agent standing by on a fast link: an idle
    tunnel's rounds then wake neither the listeners nor the agent); none while the agent carries (its route is what
    they check)."""
    return {} if upstreams.carrier() == "agent" else dict(upstreams.sockets)


def by_name(endpoints: Sequence[Endpoint], sockets: Mapping[tuple[str, int], Path]) -> dict[str, Path]:
    """The same sockets by endpoint name, as the ssh command lines take them."""
    return {e.name: sockets[(e.host, e.port)] for e in endpoints}


class ControlForwards:
    """One `ssh -O forward` request to the running main leg, started at once and answered later (`result`)."""

    def __init__(
        self,
        profile: Profile,
        rundir: Path,
        endpoints: Sequence[Endpoint],
        sockets: Mapping[tuple[str, int], Path],
        socks_socket: Path | None = None,
    ) -> None:
        # A socket left by a killed ssh would pass for the new forward (and ssh unlinks it anyway).
        for path in [*sockets.values(), *([socks_socket] if socks_socket else [])]:
            with contextlib.suppress(OSError):
                path.unlink()
        plan = Plan("local", list(endpoints))
        argv = ssh.control_forwards(profile, plan, rundir, by_name(endpoints, sockets), socks_socket)
        self.error: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=ssh.ssh_environ(profile),  # without password variables, like the legs
            )
        except OSError as e:
            self.error = f"could not run ssh: {e}"

    def result(self, timeout: float = ADD_TIMEOUT) -> str | None:
        """None once ssh has added the forwards; else why not, in ssh's words."""
        if self.proc is None:
            return self.error
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return f"ssh -O forward did not answer within {timeout:g} s"
        if self.proc.returncode == 0:
            return None
        lines = err.strip().splitlines()
        return lines[-1] if lines else f"ssh -O forward exited with {self.proc.returncode}"
