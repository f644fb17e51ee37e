"""The tunnel supervisor: start the ssh legs, wait until ready, watch, reconnect, stop; and the Python API."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ecflow_remote.access import certs, identity, relay, socks
from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.clients.connect import accepts
from ecflow_remote.errors import AlreadyRunning, EcflowRemoteError, TunnelError
from ecflow_remote.plan import Endpoint, Plan, plan_for
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh
from ecflow_remote.tunnel import health
from ecflow_remote.tunnel.rundir import RunDir, wait_for

# Capped at 10 s: a laptop back on the network should not wait long, and one ssh attempt is cheap.
BACKOFF = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0]
# After a refused certificate only a renewal helps (noticed at once); a slow retry spares the gateway's logs.
REFUSED_RETRY = 60.0
HEALTH_EVERY = 10.0
READY_TIMEOUT = 20.0
CERT_EVERY = 5.0  # how often the supervisor looks at the certificate's end (ssh -G + ssh-keygen: milliseconds)
CERT_POLL = 0.5  # while waiting to retry after a refusal: how often to look for a renewed certificate


def _die_with_parent() -> None:
    """Linux: ssh dies with the supervisor, even on kill -9 (no orphan holding the ports)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Leg:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    stdin_keep: IO[bytes] | None = None
    started: float = 0.0

    def start(self, rundir: RunDir) -> None:
        self.log = rundir.path / f"ssh-{self.name}.log"
        argv = [self.argv[0], "-E", str(self.log), *self.argv[1:]]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started = time.monotonic()
        # Held open and never written: the pty session sees no EOF and stays up.
        self.stdin_keep = self.proc.stdin

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def messages(self) -> str:
        try:
            return self.log.read_text(errors="replace") if self.log else ""
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        # ProxyCommand/ProxyJump start a second ssh in the same group: kill the whole group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.stdin_keep:
            with contextlib.suppress(OSError):
                self.stdin_keep.close()
        self.proc = None


class Supervisor:
    """Runs in its own process (or in the foreground): owns the lock and the ssh legs for one profile."""

    def __init__(self, profile: Profile, rundir: RunDir) -> None:
        self.profile = profile
        self.rundir = rundir
        self.method = profile.gateway.method
        self.legs: list[Leg] = []
        self.stopping = False
        # Whether each hop gives a pty session; learnt from the first refusal and kept for the reconnects.
        self.sessions = {"jump": True, "main": True}
        # A hop that once held a session can: a later end of it (sshd restarted) is a fault, not a refusal.
        self.sessions_proven: set[str] = set()
        self.state: dict[str, Any] = {}
        # Read once at start (never in argv, state or logs): the native health checks send them.
        self.passwords: dict[str, str] = {}
        # socks method: the password-checking SOCKS front on socks_port, up for the supervisor's whole life (ssh
        # reconnects under it), with this start's random credentials.
        self.front: socks.SocksFront | None = None
        # Servers with an ecflow_user: the relay presenting that name on their local endpoints (relay.py); like the
        # front, up for the supervisor's whole life.
        self.relay: relay.Relay | None = None

    # ------------------------------------------------------------------------------------------ state
    def _set(self, **changes: Any) -> None:
        if "state" in changes and changes["state"] != self.state.get("state"):
            changes.setdefault("since", time.time())
        self.state.update(changes)
        self.rundir.write_state(self.state)

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    # ------------------------------------------------------------------------------------------ run
    def run(self) -> int:
        lock = self.rundir.try_lock()
        if lock is None:
            return 3
        try:
            return self._run()
        finally:
            self._stop_legs()
            if self.front is not None:
                self.front.stop()
                self.front = None
            self._stop_relay()
            with contextlib.suppress(EcflowRemoteError):  # not ours to write: `down` says how (sudo)
                _remove_system_hosts(self.rundir, self.state)
            # The last state and the logs stay for whoever asks why (`up` reads the message); `down` clears all.
            self.rundir.clean_files(keep=("state.json", "supervisor.log", "ssh-main.log", "ssh-jump.log"))
            lock.close()

    def _run(self) -> int:
        self.rundir.kill_leftovers()
        self.rundir.clean_files()
        self.state = {
            "state": "starting",
            "method": self.method,
            "profile": str(self.profile.path),
            "supervisor_pid": os.getpid(),
            "pid": None,
            "pgids": [],
            "started": time.time(),
            "reconnects": 0,
            "message": "starting ssh",
            "checks": [],
        }
        try:
            plan = plan_for(self.profile, self.method)
            self._start_front(plan)
            self._start_relay(plan)
            self._install_system_hosts(plan)
        except EcflowRemoteError as e:
            self._set(state="failed", message=str(e))
            return 2
        self._set(plan=plan.to_json(), files=self._write_files(plan))
        attempt = 0
        been_up = False
        while not self.stopping:
            error = self._start_legs(plan)
            if error is None:
                been_up = True
                attempt = 0
                self._watch(plan)
                if self.stopping:
                    break
                error = self._why_down()
            refused = any(ssh.is_auth_failure(leg.messages()) for leg in self.legs)
            if refused:
                error = self._refusal(error)
            self._stop_legs()
            if self.stopping:
                break
            if not been_up and (refused or attempt >= 2):
                # Never up yet: a user is waiting for `up` to answer, so fail now, plainly.
                self._set(state="failed", message=error)
                return 1
            self.state["reconnects"] += 1
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            if refused:
                # Retrying cannot help until the certificate is renewed: retry the moment it is (a new file, agent
                # key or tsh session), and otherwise only now and then.
                self._set(state="reconnecting", message=error, pid=None)
                attempt += 1
                seen = certs.fingerprint(self.profile)
                self._sleep(REFUSED_RETRY, wake=lambda seen=seen: certs.fingerprint(self.profile) != seen)  # type: ignore[misc]
                continue
            self._set(state="reconnecting", message=f"{error}; retrying in {delay:.0f} s" if delay else error, pid=None)
            attempt += 1
            self._sleep(delay)
            if self.method == "local" and "already in use" in error:
                # Another program took one of our local ports meanwhile: choose again (the new ports are reported).
                with contextlib.suppress(EcflowRemoteError):
                    new_plan = plan_for(self.profile, self.method)
                    self._start_relay(new_plan)
                    plan = new_plan
                    self._set(plan=plan.to_json(), files=self._write_files(plan))
            self._wait_for_first_hop()
        self._set(state="stopped", message="stopped", pid=None)
        return 0

    @functools.cached_property
    def first_hop(self) -> tuple[str, int] | None:
        """Where the first ssh hop listens (ssh -G), asked once, when first needed."""
        return ssh.first_hop(self.profile)

    def _wait_for_first_hop(self) -> None:
        """Start no ssh while the first hop refuses even TCP (link down, laptop offline, sshd down): an ssh started
        then sits in SYN retransmits (1, 2, 4, 8 s apart) and is back seconds after the network; a fresh probe
        every 0.1-0.4 s starts it within a moment of the network's return."""
        hop = self.first_hop
        if hop is None or self.stopping or accepts(hop, timeout=0.3):
            return
        self._set(message=f"{self.state.get('message', '')}; waiting for {hop[0]} port {hop[1]} to answer")
        while not self.stopping and not accepts(hop, timeout=0.3):
            time.sleep(0.1)

    def _sleep(self, seconds: float, wake: Callable[[], bool] | None = None) -> None:
        deadline = time.monotonic() + seconds
        next_poll = time.monotonic() + CERT_POLL
        while not self.stopping and time.monotonic() < deadline:
            if wake is not None and time.monotonic() >= next_poll:
                if wake():
                    return
                next_poll = time.monotonic() + CERT_POLL
            time.sleep(0.05)

    def _refusal(self, error: str) -> str:
        """The gateway refused us: say whether the certificate is why, and how to renew it."""
        cert = certs.find(self.profile)
        self._note_certificate(cert)
        why = certs.problem(self.profile, cert)
        if why:
            return why
        if cert is None:
            return f"{error} (no SSH certificate found: {certs.renew_hint(self.profile)})"
        return error

    def _note_certificate(self, cert: certs.Certificate | None) -> None:
        self.state["certificate"] = cert.to_json() if cert else None

    def _certificate_message(self) -> str:
        """The `up` message, with a warning when the certificate ends within gateway.warn_before."""
        cert = certs.find(self.profile)
        self._note_certificate(cert)
        warning = certs.warning(self.profile, cert)
        return f"tunnel up; {warning}" if warning else "tunnel up"

    def _start_front(self, plan: Plan) -> None:
        """socks: our SOCKS5 front on socks_port, asking for this start's random user and password."""
        if plan.socks_port is None:
            return
        creds = socks.Credentials.new()
        listen = ("127.0.0.1", plan.socks_port)
        try:
            self.front = socks.SocksFront(listen, socks.socket_path(self.rundir.path), creds).start()
        except OSError as e:
            raise EcflowRemoteError(
                f"127.0.0.1:{plan.socks_port} (gateway.socks_port) cannot be used ({e.strerror or e}): another "
                f"SOCKS proxy or tunnel runs there. Stop it, or set socks_port in {self.profile.path} to a free port."
            ) from None
        plan.proxy_auth = creds.pair()

    def _start_relay(self, plan: Plan) -> None:
        """The user-name relay on the local endpoint of every server with an ecflow_user (ssh forwards those to
        private unix sockets behind it)."""
        self._stop_relay()
        routes = [
            relay.Route((e.local_host, e.local_port), relay.socket_path(self.rundir.path, e.name), e.relay_user)
            for e in plan.forwards
            if e.relay_user
        ]
        if not routes:
            return
        try:
            self.relay = relay.Relay(routes).start()
        except OSError as e:
            raise EcflowRemoteError(
                f"a local endpoint of the tunnel cannot be used ({e.strerror or e}): is another tunnel (or "
                "ecflow-remote) running? See `ecflow-remote status`, or stop the other program."
            ) from None

    def _stop_relay(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    def _write_files(self, plan: Plan) -> dict[str, str]:
        from ecflow_remote import launch

        files = launch.write_support_files(plan, self.rundir.path)
        if self.front is not None:
            files["socks_auth"] = str(self.front.credentials.write(self.rundir.path))
        self.passwords, errors = read_passwords(self.profile)
        if errors:
            self.state["warnings"] = errors
        files.update(identity.write_files(self.profile, plan, self.rundir.path, self.passwords))
        files.update(self._install_system_hosts(plan))
        return files

    def _install_system_hosts(self, plan: Plan) -> dict[str, str]:
        """system_hosts, where launched programs get no private view: the plan's names in the system file."""
        from ecflow_remote.hosts import system as systemhosts

        files = systemhosts.install_for(self.profile, plan, self.rundir)
        if files:
            # Recorded at once: after a kill -9 from here on, a later up/down still finds and removes the block.
            self._set(files={**self.state.get("files", {}), **files})
        return files

    def _start_legs(self, plan: Plan) -> str | None:
        """Start ssh and wait until every forward listens; None when ready, else why not."""
        legs = ssh.legs(self.profile, plan, self.rundir.path, self.sessions["jump"], self.sessions["main"])
        self.legs = []
        if legs.jump_master:
            sock = self.rundir.path / "jump.sock"
            # A master killed by SIGKILL leaves its socket: waiting on a stale one would start the main leg
            # before the new master listens, and its ProxyCommand would fall back to a session-less hop (stall).
            with contextlib.suppress(OSError):
                sock.unlink()
            master = Leg("jump", legs.jump_master)
            master.start(self.rundir)
            self.legs.append(master)
            if not wait_for(lambda: accepts(sock) or not master.alive(), 15):
                return "the jump host did not answer within 15 s"
            if not master.alive():
                return self._leg_failed(master)
        socks_sock = socks.socket_path(self.rundir.path)
        if plan.socks_port is not None:
            with contextlib.suppress(OSError):
                socks_sock.unlink()  # a stale one would pass the readiness check below before ssh listens
        relayed = [relay.socket_path(self.rundir.path, e.name) for e in plan.forwards if e.relay_user]
        for path in relayed:
            with contextlib.suppress(OSError):
                path.unlink()
        main = Leg("main", legs.main)
        main.start(self.rundir)
        self.legs.append(main)
        self._set(
            pid=main.proc.pid if main.proc else None,
            pgids=[leg.proc.pid for leg in self.legs if leg.proc],
            sessions=self.sessions,
        )
        # Relayed servers: the relay listens all along; ready means ssh's unix socket behind it takes connections.
        ports = [(e.local_host, e.local_port) for e in plan.forwards if not e.relay_user]
        deadline = time.monotonic() + READY_TIMEOUT
        # socks: the front listens all along; ready means ssh's own SOCKS socket behind it takes connections.
        while not (
            all(accepts(address) for address in ports)
            and all(accepts(path) for path in relayed)
            and (plan.socks_port is None or accepts(socks_sock))
        ):
            if not main.alive():
                return self._leg_failed(main)
            if self.stopping or time.monotonic() > deadline:
                return "ssh did not open the forwards in time" if not self.stopping else "stopped"
            time.sleep(0.02)
        checks = self._health(plan)
        self._set(state="up", message=self._certificate_message(), checks=checks)
        return None

    def _leg_failed(self, leg: Leg) -> str:
        text = leg.messages()
        code = leg.proc.returncode if leg.proc else None
        # ssh exits 255 for its own errors; any other status is the remote command's, so the connection worked
        # and the hop ended (or refused) the session itself, as a Teleport proxy does. Carry on without one.
        refused = code not in (None, 255) or re.search(r"pty|shell request|session", text, re.I)
        proven = leg.name in self.sessions_proven
        if self.sessions.get(leg.name) and refused and not proven and not ssh.is_auth_failure(text):
            self.sessions[leg.name] = False
            return f"{leg.name} leg: the hop gives no interactive session; continuing without (slower small requests)"
        return f"{leg.name} leg: {ssh.explain(text)}"

    def _why_down(self) -> str:
        for leg in self.legs:
            if not leg.alive():
                return self._leg_failed(leg)
        return "health check failed"

    def _watch(self, plan: Plan) -> None:
        next_health = time.monotonic() + HEALTH_EVERY
        next_cert = time.monotonic() + CERT_EVERY
        while not self.stopping:
            if not all(leg.alive() for leg in self.legs):
                return
            for leg in self.legs:
                # A session that lasted is proof the hop gives them; a refused one ends within a second.
                if self.sessions[leg.name] and time.monotonic() - leg.started > 5:
                    self.sessions_proven.add(leg.name)
            if time.monotonic() >= next_health:
                self._set(checks=self._health(plan))
                next_health = time.monotonic() + HEALTH_EVERY
            if time.monotonic() >= next_cert:
                message = self._certificate_message()
                if message != self.state.get("message"):
                    self._set(message=message)
                next_cert = time.monotonic() + CERT_EVERY
            time.sleep(0.05)

    def _health(self, plan: Plan) -> list[dict[str, Any]]:
        users = {s.name: s.ecflow_user for s in self.profile.servers}
        auth = {k: a.client_kwargs() for k, a in identity.client_auth(self.profile, self.passwords).items()}
        return [c.to_json() for c in asyncio.run(health.check_all(plan, 3.0, users, auth))]

    def _stop_legs(self) -> None:
        for leg in reversed(self.legs):
            leg.stop()
        self.legs = []


# ------------------------------------------------------------------------------------------------ the API


class Tunnel:
    """One profile's tunnel, as a library user sees it.

    with Tunnel("profile.toml") as t:
        host, port = t.endpoint("machine1")
    """

    def __init__(self, profile: Profile | Path | str | None = None, method: str | None = None) -> None:
        self.profile = profile if isinstance(profile, Profile) else load_profile(Path(profile) if profile else None)
        if method:
            self.profile = self.profile.with_method(method)
        self.rundir = RunDir.for_profile(self.profile.path)
        self._started_here = False

    # ---------------------------------------------------------------------------------------- control
    def is_running(self) -> bool:
        return self.rundir.is_locked()

    def state(self) -> dict[str, Any] | None:
        return self.rundir.read_state() if self.is_running() else None

    def up(
        self,
        timeout: float = 30.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
        require_all: bool = True,
    ) -> dict[str, Any]:
        """Start the supervisor in the background; return once every server answers a ping, or raise.

        With require_all=False, return as soon as the tunnel itself is up, whichever servers answer (a server in
        maintenance should not keep a user from the others); the returned state's checks say which do not.
        """
        if self.is_running():
            current = self.rundir.read_state() or {}
            raise AlreadyRunning(
                f"a tunnel for {self.profile.path} is already running (method "
                f"{current.get('method')}, ssh pid {current.get('pid')}): see `ecflow-remote status`, "
                "or `ecflow-remote down` first"
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
                _remove_system_hosts(self.rundir, self.rundir.read_state())  # a killed supervisor's block
            with contextlib.suppress(OSError):
                self.rundir.state_file.unlink()
        finally:
            lock.close()
        self.rundir.path.mkdir(mode=0o700, exist_ok=True)
        log = open(self.rundir.log_file, "ab")  # noqa: SIM115 (the child owns it)
        argv = [
            sys.executable,
            "-m",
            "ecflow_remote.tunnel.supervisor",
            str(self.profile.path),
            self.profile.gateway.method,
        ]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self._started_here = True
        try:
            return self._wait_ready(proc, timeout, progress, require_all)
        except AlreadyRunning:
            raise  # the other `up` won the race: its tunnel is not ours to stop
        except BaseException:
            # Ctrl-C or a failure while waiting: nothing may be left half started.
            self.down()
            raise

    def _wait_ready(
        self,
        proc: subprocess.Popen[bytes],
        timeout: float,
        progress: Callable[[dict[str, Any]], None] | None,
        require_all: bool,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.rundir.read_state() or {}
            if progress:
                progress(state)
            if state.get("state") == "up" and (_all_servers_ok(state) or not require_all):
                return state
            if state.get("state") == "failed" or proc.poll() is not None:
                proc.wait()
                if proc.returncode == 3:
                    raise AlreadyRunning(f"a tunnel for {self.profile.path} was started at the same moment")
                state = self.rundir.read_state() or state
                raise TunnelError(
                    f"tunnel did not come up: {state.get('message', 'the supervisor exited')}"
                    f" (log: {self.rundir.log_file})"
                )
            time.sleep(0.05)
        raise TunnelError(_not_ready_message(state, timeout))

    def down(self, timeout: float = 10.0) -> bool:
        """Stop the supervisor and every ssh it started; True if something was running."""
        state = self.rundir.read_state() or {}
        pid = state.get("supervisor_pid")
        running = self.is_running()
        if running and pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
            wait_for(lambda: not self.is_running(), timeout)
        # After a kill -9 of the supervisor: its ssh groups, files and state are still to be cleared.
        self.rundir.kill_leftovers()
        if not self.is_running():
            self.rundir.remove()
            _remove_system_hosts(self.rundir, state)  # raises, with the sudo command, if it cannot
        return running

    def __enter__(self) -> Tunnel:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---------------------------------------------------------------------------------------- queries
    def plan(self) -> Plan:
        state = self.state()
        if not state or "plan" not in state:
            raise TunnelError(f"no tunnel is running for {self.profile.path}: start it with `ecflow-remote up`")
        plan = Plan.from_json(state["plan"])
        auth_file = state.get("files", {}).get("socks_auth")
        if plan.socks_port is not None and auth_file:
            creds = socks.Credentials.read(auth_file)
            if creds is not None:
                plan.proxy_auth = creds.pair()
        return plan

    def endpoint(self, server: str) -> tuple[str, int]:
        """The local (host, port) of a server, as ECF_HOST/ECF_PORT would take it."""
        self.profile.server(server)  # a clear error for an unknown name
        e = self.plan().endpoint(server)
        return e.local_host, e.local_port

    def endpoints(self) -> list[Endpoint]:
        return self.plan().endpoints

    def check(self, timeout: float = 3.0, passwords: dict[str, str] | None = None) -> list[health.Check]:
        plan = self.plan()
        users = {s.name: s.ecflow_user for s in self.profile.servers}
        auth = {k: a.client_kwargs() for k, a in identity.client_auth(self.profile, passwords).items()}
        return asyncio.run(health.check_all(plan, timeout, users, auth))


def _remove_system_hosts(rundir: RunDir, state: dict[str, Any] | None) -> None:
    """The tunnel's block in the system hosts file (system_hosts), if it has one there."""
    from ecflow_remote.hosts import system as systemhosts

    systemhosts.remove_for(rundir, state)


def _all_servers_ok(state: dict[str, Any]) -> bool:
    checks = [c for c in state.get("checks", []) if c.get("kind") == "server"]
    return bool(checks) and all(c.get("reachable") for c in checks)


def _not_ready_message(state: dict[str, Any], timeout: float) -> str:
    if state.get("state") != "up":
        return f"tunnel not up after {timeout:.0f} s: {state.get('message', 'no word from the supervisor')}"
    bad = [
        f"{c['name']} ({c['host']}:{c['port']}): {c.get('error')}"
        for c in state.get("checks", [])
        if c.get("kind") == "server" and not c.get("reachable")
    ]
    return f"tunnel up, but not every server answered a ping within {timeout:.0f} s: " + "; ".join(bad)


@contextlib.contextmanager
def open_tunnel(profile: Profile | Path | str | None = None, method: str | None = None) -> Iterator[Tunnel]:
    """`with open_tunnel("profile.toml") as t:` — up on entry, down on exit, whatever happens."""
    tunnel = Tunnel(profile, method)
    try:
        tunnel.up()
        yield tunnel
    finally:
        tunnel.down()


def main() -> None:
    """`python -m ecflow_remote.tunnel.supervisor PROFILE METHOD`: the background supervisor that `up` starts."""
    profile = load_profile(Path(sys.argv[1])).with_method(sys.argv[2])
    supervisor = Supervisor(profile, RunDir.for_profile(profile.path))
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.exit(supervisor.run())


if __name__ == "__main__":
    main()
