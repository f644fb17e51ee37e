"""A profile's tunnel as a caller sees it: start and stop the supervisor, read its state, hand out clients."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ecflow_remote.access import identity, socks
from ecflow_remote.access.passwords import hand_over, read_passwords_warned
from ecflow_remote.endpoints import Wanted
from ecflow_remote.errors import AlreadyRunning, EcflowRemoteError, TunnelError
from ecflow_remote.plan import Endpoint, Plan, known
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT, Profile
from ecflow_remote.safefile import open_private
from ecflow_remote.transport import ssh
from ecflow_remote.transport.ssh import ssh_environ
from ecflow_remote.tunnel import files, health
from ecflow_remote.tunnel.certfetch import workstation_fetcher
from ecflow_remote.tunnel.clients import Clients
from ecflow_remote.tunnel.rundir import FAILED_START_LOGS, RunDir, remove_old_failed_starts, wait_for
from ecflow_remote.tunnel.running import stop
from ecflow_remote.tunnel.state import Check, RunFiles, TunnelState

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient
    from ecflow_remote.clients.logserver import AsyncLogServerClient, LogServerClient

Progress = Callable[[TunnelState | None], None]


class Tunnel:
    """One profile's tunnel, as a library user sees it.

    with Tunnel("profile.toml") as t:
        host, port = t.endpoint("machine1")
        defs = t.ecflow_client_sync("machine1").get_defs()
    """

    def __init__(self, profile: Profile | Path | str | None = None, method: str | None = None) -> None:
        self.profile = profile if isinstance(profile, Profile) else load_profile(Path(profile) if profile else None)
        if method:
            self.profile = self.profile.with_method(method)
        self.rundir = RunDir.for_profile(self.profile.path)
        self._clients: Clients | None = None
        self._password_warnings: list[str] = []
        self._owner: int | None = None  # the write end of an owned tunnel's pipe (up(owned=True))

    # ---------------------------------------------------------------------------------------- control
    def is_running(self) -> bool:
        return self.rundir.is_locked()

    def state(self) -> TunnelState | None:
        return self.rundir.read_state() if self.is_running() else None

    def up(
        self, timeout: float = 30.0, progress: Progress | None = None, require_all: bool = True, owned: bool = False
    ) -> TunnelState:
        """Start the supervisor in the background; return once every server answers a ping, or raise.

        With require_all=False, return as soon as the tunnel itself is up, whichever servers answer (a server in
        maintenance should not keep a user from the others); the returned state's checks say which do not.
        With owned=True the tunnel lives no longer than this process: however it ends (even kill -9), the
        supervisor stops as at `down` (a foreground `up`, `open_tunnel`).
        """
        if self.is_running():
            current = self.rundir.read_state()
            raise AlreadyRunning(
                f"a tunnel for {self.profile.path} is already running (method "
                f"{current.method if current else '?'}, ssh pid {current.pid if current else '?'}): see "
                "`ecflow-remote status`, or `ecflow-remote down` first"
            )
        ssh.ssh_binary()  # no OpenSSH client: say so here, plainly, before anything starts
        # Leftovers of a dead supervisor are only ours to clear while we hold the lock: without it, a second `up`
        # racing the first would kill the first one's fresh ssh legs (their pgids are in state.json).
        lock = self.rundir.try_lock()
        if lock is None:
            raise AlreadyRunning(f"a tunnel for {self.profile.path} is being started at this moment")
        try:
            self.rundir.kill_leftovers()
            with contextlib.suppress(EcflowRemoteError):
                old = self.rundir.read_state()  # a killed supervisor's block
                files.remove_system_hosts(self.rundir.path.name, old.files if old else None)
            with contextlib.suppress(OSError):
                self.rundir.state_file.unlink()
        finally:
            lock.close()
        self._clients = None
        proc = self._spawn_supervisor(owned)
        try:
            return self._wait_ready(proc, timeout, progress, require_all)
        except AlreadyRunning:
            self._release_owner()
            raise  # the other `up` won the race: its tunnel is not ours to stop
        except TunnelError as e:
            # Nothing may be left half started; ssh's own words stay, where the message says.
            self._stop_starting(proc)
            self.down(keep_logs=True)
            raise TunnelError(f"{e}{self._logs_note()}") from None
        except BaseException:
            # Ctrl-C while waiting.
            self._stop_starting(proc)
            self.down()
            raise

    def _stop_starting(self, proc: subprocess.Popen[bytes]) -> None:
        """The supervisor we started, stopped even before its first state.json (which `down` finds it by)."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _logs_note(self) -> str:
        """Where the logs a failed start left are (only those really there)."""
        logs = [self.rundir.path / name for name in FAILED_START_LOGS]
        kept = [p for p in logs if p.is_file() and p.stat().st_size > 0]
        if not kept:
            return ""
        if len(kept) == 1:
            return f" (log: {kept[0]})"
        return f" (logs: {', '.join(str(p) for p in kept)})"

    def _spawn_supervisor(self, owned: bool) -> subprocess.Popen[bytes]:
        """The supervisor as its own process (`python -m ecflow_remote.tunnel`), logging to the run directory.
        Owned: it gets the read end of a pipe whose only write end this process keeps (close-on-exec, so no program
        it starts holds it): the pipe's end is this process's end, whatever ended it (tunnel/__main__.py)."""
        self.rundir.make()
        # Absolute: state.json names the profile, and `status --all` or `down` from another directory read it.
        argv = [sys.executable, "-m", "ecflow_remote.tunnel", str(self.profile.path.absolute())]
        argv.append(self.profile.gateway.method)
        self._release_owner()
        remove_old_failed_starts(self.rundir.path.parent)  # other profiles' (this one's go at this start)
        fds: tuple[int, ...] = ()
        if owned:
            read, self._owner = os.pipe()
            fds = (read,)
            argv.append(str(read))
        try:
            with open_private(self.rundir.log_file, "wb") as log:  # a failed start's log stays until the next start
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    pass_fds=fds,
                    env=ssh_environ(self.profile),  # the password variables go through the pipe instead
                )
            assert proc.stdin is not None
            with contextlib.suppress(OSError), proc.stdin:
                hand_over(self.profile, proc.stdin)
            return proc
        finally:
            for fd in fds:
                os.close(fd)

    def _release_owner(self) -> None:
        if self._owner is not None:
            with contextlib.suppress(OSError):
                os.close(self._owner)
            self._owner = None

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], timeout: float, progress: Progress | None, require_all: bool
    ) -> TunnelState:
        deadline = time.monotonic() + timeout
        state: TunnelState | None = None
        hop = FirstHop(self.profile)
        while time.monotonic() < deadline:
            state = hop.annotate(self.rundir.read_state())
            if progress:
                progress(state)
            if state is not None and state.state == "up" and (state.all_servers_ok() or not require_all):
                return state
            if state is not None and state.state == "up" and state.lasting_failures():
                # Refused or unknown at the far end, a password not read: waiting out the timeout cannot help.
                raise TunnelError(cannot_answer_message(state))
            if (state is not None and state.state == "failed") or proc.poll() is not None:
                proc.wait()
                if proc.returncode == 3:
                    raise AlreadyRunning(f"a tunnel for {self.profile.path} was started at the same moment")
                state = self.rundir.read_state() or state
                message = state.message if state else "the supervisor exited"
                raise TunnelError(f"tunnel did not come up: {message}")
            time.sleep(0.02)  # a state read is cheap; `up` returns within 20 ms of ready
        raise TunnelError(not_ready_message(state, timeout))

    def down(self, timeout: float = 10.0, *, keep_logs: bool = False) -> bool:
        """Stop the supervisor and every ssh it started; True if something was running. keep_logs: leave the
        logs of a failed start (the next start or `down` removes them)."""
        running = stop(self.rundir, timeout, keep_logs=keep_logs)
        self._release_owner()
        self._clients = None
        return running

    def __enter__(self) -> Tunnel:
        self.up(owned=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---------------------------------------------------------------------------------------- queries
    def _running_state(self) -> TunnelState:
        state = self.state()
        if state is None or state.plan is None:
            raise TunnelError(f"no tunnel is running for {self.profile.path}: start it with `ecflow-remote up`")
        return state

    def plan(self) -> Plan:
        """The running tunnel's plan, with the SOCKS front's credentials (socks) for native clients."""
        state = self._running_state()
        assert state.plan is not None
        if state.plan.socks_port is not None and state.files.socks_auth:
            creds = socks.Credentials.read(state.files.socks_auth)
            if creds is not None:
                return dataclasses.replace(state.plan, proxy_auth=creds.pair())  # a copy: the state read stays as read
        return state.plan

    def files(self) -> RunFiles:
        """The files the supervisor wrote for launched programs (hosts view, proxychains; no password)."""
        return self._running_state().files

    def endpoint(self, server: str) -> tuple[str, int]:
        """The local (host, port) of a server, as ECF_HOST/ECF_PORT would take it."""
        self.profile.server(server)  # a clear error for an unknown name
        e = self.plan().endpoint(server)
        return e.local_host, e.local_port

    def endpoints(self) -> list[Endpoint]:
        return self.plan().endpoints

    def clients(self) -> Clients:
        """The client factory for the running tunnel. Passwords are read once per Tunnel and start (passwords.py's
        one rule: one that cannot be read is a PasswordWarning, and its server's requests go without it)."""
        if self._clients is None:
            passwords, self._password_warnings = read_passwords_warned(self.profile, stacklevel=2)
            fetch = workstation_fetcher(self.profile, self.rundir.path)
            self._clients = Clients(self.plan(), identity.client_auth(self.profile, passwords), fetch)
        return self._clients

    def password_warnings(self) -> list[str]:
        """What could not be read when the clients were made (never a secret)."""
        return list(self._password_warnings)

    def ecflow_client(self, server: str, **timeouts: float) -> AsyncEcflowClient:
        """An asyncio ecFlow client for a profile server through the tunnel, as the server's configured user."""
        self.profile.server(server)  # a clear error for an unknown name
        return self.clients().ecflow(server, **timeouts)

    def ecflow_client_sync(self, server: str, **timeouts: float) -> EcflowClient:
        self.profile.server(server)
        return self.clients().ecflow_sync(server, **timeouts)

    def logserver_client(
        self, host: str, port: int = DEFAULT_LOGSERVER_PORT, **timeouts: float
    ) -> AsyncLogServerClient:
        """An asyncio client for a log server the tunnel reaches (named in the profile, or found since in a
        server's suites); LookupError if it reaches none there."""
        return self.clients_reaching(host, port).logserver(host, port, **timeouts)

    def logserver_client_sync(
        self, host: str, port: int = DEFAULT_LOGSERVER_PORT, **timeouts: float
    ) -> LogServerClient:
        return self.clients_reaching(host, port).logserver_sync(host, port, **timeouts)

    def clients_reaching(self, host: str, port: int) -> Clients:
        """The client factory, made again from the supervisor's latest plan if the one in hand does not reach that
        log server (the supervisor may have found it since)."""
        if self.clients().logserver_endpoint(host, port) is None:
            self._clients = None
        return self.clients()

    def carry(self, wanted: Sequence[Wanted], timeout: float = 10.0) -> Plan:
        """Ask the running supervisor to carry these services too (log servers, ecFlow servers the profile does
        not name; inbox.py) and return its plan once it has answered (or after `timeout`). What ssh could not
        forward (plain transport, no agent) the plan then lacks; status says why."""
        from ecflow_remote.tunnel import inbox

        plan = self.plan()
        missing = [w for w in wanted if known(plan, w) is None]
        if missing and inbox.ask(self.rundir.path, missing, timeout, alive=self.is_running):
            self._clients = None
            plan = self.plan()
        return plan

    def wait_found(self, timeout: float = 5.0) -> bool:
        """Until the supervisor has looked once for the log servers the servers' suites name (right after `up`),
        so that a program launched now sees their names; False if it has not within `timeout`."""
        return wait_for(lambda: (s := self.state()) is None or s.found_rounds > 0, timeout)

    def check(self, timeout: float = 3.0) -> list[Check]:
        """Every server and log server, checked now (concurrently)."""
        return asyncio.run(health.check_all(self.clients(), timeout))


class FirstHop:
    """While the supervisor is still starting ssh, whether the first hop answers at all: an ssh sits in SYN
    retries until its ConnectTimeout, saying nothing, and a user watching `up` should know why it waits."""

    EVERY = 1.0  # seconds between probes; the first one after this long (a healthy start is quicker)

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.address: tuple[str, int] | bool | None = False  # False: not asked yet (ssh -G, once)
        self.next = time.monotonic() + self.EVERY
        self.note: str | None = None

    def annotate(self, state: TunnelState | None) -> TunnelState | None:
        """The state, its message saying that the first hop does not answer when that is so."""
        if state is None or state.state != "starting":
            return state
        if time.monotonic() >= self.next:
            self.next = time.monotonic() + self.EVERY
            self.note = self._probe()
        return dataclasses.replace(state, message=f"{state.message}: {self.note}") if self.note else state

    def _probe(self) -> str | None:
        from ecflow_remote.clients.connect import accepts

        if self.address is False:
            self.address = ssh.first_hop_address(self.profile)
        if not isinstance(self.address, tuple) or accepts(self.address, timeout=0.3):
            return None
        host, port = self.address
        return f"{host} port {port} does not answer (no network, VPN, or the host is down)"


def not_ready_message(state: TunnelState | None, timeout: float) -> str:
    if state is None or state.state != "up":
        message = state.message if state else "no word from the supervisor"
        return f"tunnel not up after {timeout:.0f} s: {message}"
    # `up` takes the tunnel down on this: say so, not "tunnel up".
    return f"not every server answered a ping within {timeout:.0f} s: {_not_answering(state)}{NOTHING_LEFT}"


def cannot_answer_message(state: TunnelState) -> str:
    """A server cannot answer while `up` waits (tunnel/causes.py): which, why, and the way on."""
    lasting = state.lasting_failures()
    which = "a server cannot" if len(lasting) == 1 else f"{len(lasting)} servers cannot"
    return f"{which} answer, whatever the wait: {_not_answering(state)}{NOTHING_LEFT}"


# What `up` leaves when it fails on servers, and the way on.
NOTHING_LEFT = (
    "; nothing is left running. `ecflow-remote up --allow-unreachable` starts the tunnel without waiting for "
    "every server"
)


def _not_answering(state: TunnelState) -> str:
    """Each server that did not answer, with why (the lasting causes first)."""
    bad = sorted((c for c in state.server_checks() if not c.reachable), key=lambda c: not c.lasting)
    return "; ".join(f"{c.endpoint.name} ({c.endpoint.host}:{c.endpoint.port}): {c.error}" for c in bad)


@contextlib.contextmanager
def open_tunnel(profile: Profile | Path | str | None = None, method: str | None = None) -> Iterator[Tunnel]:
    """`with open_tunnel("profile.toml") as t:` — up on entry, down on exit, whatever happens."""
    tunnel = Tunnel(profile, method)
    # Not inside the try: a failed up() leaves nothing of its own behind, and when it failed because a tunnel of
    # this profile already runs (started by `ecflow-remote up`), that tunnel is not ours to stop.
    tunnel.up(owned=True)
    try:
        yield tunnel
    finally:
        tunnel.down()
