"""The tunnel supervisor process: starts the ssh legs, waits until ready, watches, reconnects, stops."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ecflow_remote.access import certs, identity, relay, socks
from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.clients.connect import accepts
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.plan import Plan, plan_for
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh
from ecflow_remote.tunnel import decisions, files, health
from ecflow_remote.tunnel.clients import Clients
from ecflow_remote.tunnel.legs import Leg
from ecflow_remote.tunnel.rundir import RunDir, wait_for
from ecflow_remote.tunnel.state import Check, Phase, RunFiles, TunnelState

HEALTH_EVERY = 10.0
READY_TIMEOUT = 20.0
CERT_EVERY = 5.0  # how often the supervisor looks at the certificate's end (ssh -G + ssh-keygen: milliseconds)
CERT_POLL = 0.5  # while waiting to retry after a refusal: how often to look for a renewed certificate
# What a failed start leaves for whoever asks why (`up` reads the message); `down` clears all.
KEPT_AFTER_EXIT = ("state.json", "supervisor.log", "ssh-main.log", "ssh-jump.log")


class Supervisor:
    """Runs in its own process (or in the foreground): owns the lock, the listeners and the ssh legs of a profile."""

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
        self.state = TunnelState("starting", self.method, str(profile.path), os.getpid(), "starting ssh")
        # Read once at start (never in argv, state or logs): the native health checks send them.
        self.passwords: dict[str, str] = {}
        # socks method: the password-checking SOCKS front on socks_port, up for the supervisor's whole life (ssh
        # reconnects under it), with this start's random credentials.
        self.front: socks.SocksFront | None = None
        # Servers with an ecflow_user: the relay presenting that name on their local endpoints (relay.py); like the
        # front, up for the supervisor's whole life.
        self.relay: relay.Relay | None = None

    # ------------------------------------------------------------------------------------------ state
    def _set(self, phase: Phase | None = None, **changes: object) -> None:
        if phase is not None and phase != self.state.state:
            self.state.state = phase
            self.state.since = time.time()
        for key, value in changes.items():
            setattr(self.state, key, value)
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
                files.remove_system_hosts(self.rundir.path.name, self.state.files)
            self.rundir.clean_files(keep=KEPT_AFTER_EXIT)
            lock.close()

    def _run(self) -> int:
        self.rundir.kill_leftovers()
        self.rundir.clean_files(keep=("supervisor.log",))  # our own stdout: `up` opened it afresh
        self.state.started = time.time()
        self._set("starting")
        try:
            plan = self._prepare()
        except EcflowRemoteError as e:
            self._set("failed", message=str(e))
            return 2
        attempt = 0
        been_up = False
        while not self.stopping:
            failure = self._start_legs(plan)
            if failure is None:
                been_up = True
                attempt = 0
                self._watch(plan)
                if self.stopping:
                    break
                failure = self._why_down()
            if any(ssh.is_auth_failure(leg.messages()) for leg in self.legs):
                failure = decisions.Failure(self._refusal(failure.message), refused=True)
            self._stop_legs()
            if self.stopping:
                break
            step = decisions.after_failure(failure, been_up=been_up, attempt=attempt, method=self.method)
            if step.action == "fail":
                # Never up yet: a user is waiting for `up` to answer, so fail now, plainly.
                self._set("failed", message=failure.message)
                return 1
            self.state.reconnects += 1
            attempt += 1
            if step.action == "await_renewal":
                self._set("reconnecting", message=decisions.renewal_message(failure.message), pid=None)
                seen = certs.fingerprint(self.profile)
                self._sleep(step.delay, wake=lambda seen=seen: certs.fingerprint(self.profile) != seen)  # type: ignore[misc]
                continue
            self._set("reconnecting", message=decisions.retry_message(failure.message, step.delay), pid=None)
            self._sleep(step.delay)
            if step.replan:
                # Another program took one of our local ports meanwhile: choose again (the new ports are reported).
                with contextlib.suppress(EcflowRemoteError):
                    plan = self._replan()
            self._wait_for_first_hop()
        self._set("stopped", message="stopped", pid=None)
        return 0

    def _prepare(self) -> Plan:
        """The plan, the listeners the supervisor owns (SOCKS front, identity relay) and the run files."""
        credentials = socks.Credentials.new() if self.method == "socks" else None
        plan = plan_for(self.profile, self.method, credentials.pair() if credentials else None)
        self._start_front(plan, credentials)
        self._start_relay(plan)
        # Recorded at once: after a kill -9 from here on, a later up/down still finds and removes the block.
        system_files, warnings = files.install_system_hosts(self.profile, plan, self.rundir.path.name)
        self._set(files=system_files)
        self.passwords, errors = read_passwords(self.profile)
        run_files = files.write_support_files(self.profile, plan, self.rundir.path, self.passwords, credentials)
        self._set(plan=plan, files=run_files.merged(system_files), warnings=[*errors, *warnings])
        return plan

    def _replan(self) -> Plan:
        plan = plan_for(self.profile, self.method)
        self._start_relay(plan)
        run_files = files.write_support_files(self.profile, plan, self.rundir.path, self.passwords)
        self._set(plan=plan, files=run_files.merged(RunFiles(system_hosts=self.state.files.system_hosts)))
        return plan

    @functools.cached_property
    def first_hop(self) -> tuple[str, int] | None:
        """Where the first ssh hop listens (ssh -G), asked once, when first needed."""
        return ssh.first_hop_address(self.profile)

    def _wait_for_first_hop(self) -> None:
        """Start no ssh while the first hop refuses even TCP (link down, laptop offline, sshd down): an ssh started
        then sits in SYN retransmits (1, 2, 4, 8 s apart) and is back seconds after the network; a fresh probe
        every 0.1-0.4 s starts it within a moment of the network's return."""
        hop = self.first_hop
        if hop is None or self.stopping or accepts(hop, timeout=0.3):
            return
        self._set(message=f"{self.state.message}; waiting for {hop[0]} port {hop[1]} to answer")
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
        self.state.certificate = cert.to_json() if cert else None
        return certs.refusal(self.profile, cert, "\n".join(leg.messages() for leg in self.legs)).text

    def _certificate_message(self) -> str:
        """The `up` message, with a warning when the certificate ends within gateway.warn_before."""
        cert = certs.find(self.profile)
        self.state.certificate = cert.to_json() if cert else None
        warning = certs.warning(self.profile, cert)
        return f"tunnel up; {warning}" if warning else "tunnel up"

    def _start_front(self, plan: Plan, credentials: socks.Credentials | None) -> None:
        """socks: our SOCKS5 front on socks_port, asking for this start's random user and password."""
        if plan.socks_port is None or credentials is None:
            return
        listen = ("127.0.0.1", plan.socks_port)
        try:
            self.front = socks.SocksFront(listen, socks.socket_path(self.rundir.path), credentials).start()
        except OSError as e:
            raise EcflowRemoteError(
                f"127.0.0.1:{plan.socks_port} (gateway.socks_port) cannot be used ({e.strerror or e}): another "
                f"SOCKS proxy or tunnel runs there. Stop it, or set socks_port in {self.profile.path} to a free port."
            ) from None

    def _start_relay(self, plan: Plan) -> None:
        """The user-name relay on the local endpoint of every server with an ecflow_user (ssh forwards those to
        private unix sockets behind it)."""
        self._stop_relay()
        routes = [
            relay.RelayRoute((e.local_host, e.local_port), relay.socket_path(self.rundir.path, e.name), e.relay_user)
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

    def _start_legs(self, plan: Plan) -> decisions.Failure | None:
        """Start ssh and wait until every forward listens; None when ready, else why not."""
        rundir = self.rundir.path
        socks_sock = socks.socket_path(rundir) if plan.socks_port is not None else None
        relayed = {e.name: relay.socket_path(rundir, e.name) for e in plan.forwards if e.relay_user}
        legs = ssh.legs(
            self.profile,
            plan,
            rundir,
            socks_socket=socks_sock,
            relay_sockets=relayed,
            jump_session=self.sessions["jump"],
            main_session=self.sessions["main"],
        )
        self.legs = []
        if legs.jump_master:
            sock = rundir / "jump.sock"
            # A master killed by SIGKILL leaves its socket: waiting on a stale one would start the main leg
            # before the new master listens, and its ProxyCommand would fall back to a session-less hop (stall).
            with contextlib.suppress(OSError):
                sock.unlink()
            master = Leg("jump", legs.jump_master)
            master.start(rundir)
            self.legs.append(master)
            if not wait_for(lambda: accepts(sock) or not master.alive(), 15):
                return decisions.Failure("the jump host did not answer within 15 s")
            if not master.alive():
                return self._leg_failed(master)
        # Stale sockets of a killed ssh would pass the readiness check below before ssh listens.
        sockets: list[Path] = [*relayed.values(), *([socks_sock] if socks_sock else [])]
        for path in sockets:
            with contextlib.suppress(OSError):
                path.unlink()
        main = Leg("main", legs.main)
        main.start(rundir)
        self.legs.append(main)
        self._set(
            pid=main.proc.pid if main.proc else None,
            pgids=[leg.proc.pid for leg in self.legs if leg.proc],
            sessions=dict(self.sessions),
        )
        # Relayed servers and the SOCKS front: ours listen all along; ready means ssh's unix sockets behind them
        # take connections.
        ports = [(e.local_host, e.local_port) for e in plan.forwards if not e.relay_user]
        deadline = time.monotonic() + READY_TIMEOUT
        while not (all(accepts(address) for address in ports) and all(accepts(path) for path in sockets)):
            if not main.alive():
                return self._leg_failed(main)
            if self.stopping:
                return decisions.Failure("stopped")
            if time.monotonic() > deadline:
                return decisions.Failure("ssh did not open the forwards in time")
            time.sleep(0.02)
        self._set("up", message=self._certificate_message(), checks=self._health(plan))
        return None

    def _leg_failed(self, leg: Leg) -> decisions.Failure:
        text = leg.messages()
        refused = ssh.is_auth_failure(text)
        if decisions.drops_session(
            has_session=self.sessions.get(leg.name, False),
            proven=leg.name in self.sessions_proven,
            exit_code=leg.exit_code,
            messages=text,
            refused=refused,
        ):
            self.sessions[leg.name] = False
            return decisions.Failure(
                f"{leg.name} leg: the hop gives no interactive session; continuing without (slower small requests)"
            )
        return decisions.Failure(
            f"{leg.name} leg: {ssh.explain(text)}",
            refused=refused,
            port_in_use=ssh.is_port_in_use(text),
            permanent=decisions.is_permanent(text),
        )

    def _why_down(self) -> decisions.Failure:
        for leg in self.legs:
            if not leg.alive():
                return self._leg_failed(leg)
        return decisions.Failure("health check failed")

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
                if message != self.state.message:
                    self._set(message=message)
                next_cert = time.monotonic() + CERT_EVERY
            time.sleep(0.05)

    def _health(self, plan: Plan) -> list[Check]:
        clients = Clients(plan, identity.client_auth(self.profile, self.passwords))
        return asyncio.run(health.check_all(clients, 3.0))

    def _stop_legs(self) -> None:
        for leg in reversed(self.legs):
            leg.stop()
        self.legs = []


def main(argv: list[str] | None = None) -> None:
    """`python -m ecflow_remote.tunnel PROFILE METHOD`: the background supervisor that `up` starts."""
    args = sys.argv[1:] if argv is None else argv
    profile = load_profile(Path(args[0])).with_method(args[1])
    supervisor = Supervisor(profile, RunDir.for_profile(profile.path))
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.exit(supervisor.run())
