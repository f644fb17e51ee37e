"""The tunnel supervisor process: starts the ssh legs, waits until ready, watches, reconnects, stops."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ecflow_remote.access import certs, identity, socks
from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.clients.connect import accepts, wait_accepting
from ecflow_remote.endpoints import Wanted, through_socks
from ecflow_remote.errors import AgentError, AgentUnavailable, EcflowRemoteError
from ecflow_remote.plan import Plan, plan_for
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh
from ecflow_remote.transport.agent import AgentOptions, AgentSession
from ecflow_remote.tunnel import addservices, causes, decisions, files, forwards, health, linkfigure, sidework
from ecflow_remote.tunnel.certfetch import workstation_fetcher
from ecflow_remote.tunnel.certwatch import CertWatch
from ecflow_remote.tunnel.clients import Clients
from ecflow_remote.tunnel.events import Events
from ecflow_remote.tunnel.inbox import Inbox
from ecflow_remote.tunnel.listeners import Listeners
from ecflow_remote.tunnel.logfinder import FinderProcess
from ecflow_remote.tunnel.netwatch import NetWatch
from ecflow_remote.tunnel.prestart import Prestart
from ecflow_remote.tunnel.rundir import RunDir, wait_for
from ecflow_remote.tunnel.sessions import Sessions
from ecflow_remote.tunnel.sshleg import Leg, die_with_parent, jump_outlived_main
from ecflow_remote.tunnel.state import Check, RunFiles, TunnelState

HEALTH_EVERY = 10.0
READY_TIMEOUT = 20.0
CERT_POLL = 0.5  # while waiting to retry after a refusal: how often to look for a renewed certificate
# What a failed start leaves for whoever asks why (`up` reads the message); `down` clears all.
KEPT_AFTER_EXIT = ("state.json", "supervisor.log", "ssh-main.log", "ssh-jump.log")
AGENT_START_TIMEOUT = 15.0
# The agent's own keepalive: ssh's (3 s x 3) notices a dead link first; this catches an agent that hangs. Its round
# trips time the link too (link.py); REST apart while it only stands by on a fast link (keepalive.py).
AGENT_PING_EVERY, AGENT_PING_REST = 3.0, 30.0
AGENT_PING_TIMEOUT = 12.0


class Supervisor:
    """Runs in its own process (or in the foreground): owns the lock, the listeners and the ssh legs of a profile."""

    def __init__(self, profile: Profile, rundir: RunDir) -> None:
        self.profile = profile
        self.rundir = rundir
        self.method = profile.gateway.method
        self._fetch = workstation_fetcher(profile, rundir.path)  # TLS certificates missing at home
        self.legs: list[Leg] = []
        self.stopping = False
        self.sessions = Sessions()  # whether each hop gives a pty session (sessions.py)
        self.state = TunnelState("starting", self.method, str(profile.path), os.getpid(), "starting ssh")
        # Read once at start (never in argv, state or logs): the native health checks send them.
        self.passwords: dict[str, str] = {}
        # Every local listener is ours, for the supervisor's whole life (listeners.py).
        self.net = Listeners()
        self.agent: AgentSession | None = None
        self.pending_agent: concurrent.futures.Future[AgentSession] | None = None
        # Whether to try the far-side agent: the profile's choice, until a start shows the far side cannot run it.
        self.use_agent = profile.gateway.transport != "plain"
        self.credentials: socks.Credentials | None = None
        # What the supervisor waits on between its deadlines: nothing polls (events.py).
        self.events = Events()
        # Log servers the servers' suites name, and system servers `ui` asks for, join while up (logfinder, inbox).
        self.finder = FinderProcess(profile, self.events)
        self.inbox = Inbox(rundir.path, self.events)
        self.certs = CertWatch(profile)
        self.rounds = health.Rounds()
        # The jump master the prestart launched (prestart.py), or one that outlived a killed main leg: the next
        # start of the legs takes it.
        self.early_jump: Leg | None = None
        self.netwatch = NetWatch(self.events.wake, self.net.upstreams.measure)  # (then the agent times the link)
        self.net.upstreams.gauge.on_change = self.events.wake  # the state shows the new carrier at once

    # ------------------------------------------------------------------------------------------ state
    def _set(self, new: TunnelState, *, routine: bool = False) -> None:
        """The state becomes `new` (made by dataclasses.replace, so mypy checks each field's name and type) and is
        written out, with the certificate as last found; a new phase stamps `since`. routine: a health round's
        write (RunDir.write_state). The main thread's only: the certificate is found beside the logins in
        sidework's thread, which leaves the state alone (a replace there could undo one made here)."""
        new = replace(new, certificate=self.certs.to_json())
        if new.state != self.state.state:
            new = replace(new, since=time.time())
        self.state = new
        self.rundir.write_state(new, routine)

    def request_stop(self, *_: object) -> None:
        self.stopping = True
        self.events.wake()

    # ------------------------------------------------------------------------------------------ run
    def run(self, head: Prestart) -> int:
        """Until stopped or failed for good: the exit code. `head`: the lock and jump master (prestart.py)."""
        lock, self.early_jump = head.lock, head.jump
        self.events.catch_signals()
        try:
            return self._run()
        finally:
            self.inbox.stop()
            self.finder.stop()
            self.rounds.close()
            self._stop_legs()
            self.netwatch.stop()
            if self.early_jump is not None:  # never taken over (the plan failed)
                self.early_jump.stop()
            self.net.stop()
            with contextlib.suppress(EcflowRemoteError):  # not ours to write: `down` says how (sudo)
                files.remove_system_hosts(self.rundir.path.name, self.state.files)
            self.rundir.clean_files(keep=KEPT_AFTER_EXIT)
            lock.close()
            self.events.close()

    def _run(self) -> int:
        self._set(replace(self.state, started=time.time()))
        try:
            plan = self._prepare()
        except EcflowRemoteError as e:
            self._set(replace(self.state, state="failed", message=str(e)))
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
                failure = decisions.Failure(self._refusal(), refused=True)
            self._stop_legs(keep_jump=jump_outlived_main(self.legs, ssh.jump_socket(self.rundir.path)))
            if self.stopping:
                break
            step = decisions.after_failure(failure, been_up=been_up, attempt=attempt)
            if step.action == "fail":
                # Never up yet: a user is waiting for `up` to answer, so fail now, plainly.
                self._set(replace(self.state, state="failed", message=failure.message))
                return 1
            if failure.immediate:
                self._set(replace(self.state, message=failure.message))
                continue
            attempt += 1
            reconnecting = replace(self.state, state="reconnecting", reconnects=self.state.reconnects + 1, pid=None)
            if step.action == "await_renewal":
                self._set(replace(reconnecting, message=decisions.renewal_message(failure.message)))
                seen = certs.fingerprint(self.profile)
                self._sleep(step.delay, wake=lambda seen=seen: certs.fingerprint(self.profile) != seen)  # type: ignore[misc]
                continue
            self._set(replace(reconnecting, message=decisions.retry_message(failure.message, step.delay)))
            self._sleep(step.delay)
            if been_up:  # else a user waits for `up`: its attempts end it with ssh's reason, not its timeout
                self._wait_for_first_hop()
        self._set(replace(self.state, state="stopped", message="stopped", pid=None))
        return 0

    def _prepare(self) -> Plan:
        """The plan, the listeners the supervisor owns and the run files."""
        self.credentials = credentials = socks.Credentials.new() if through_socks(self.method) else None
        plan = plan_for(self.profile, self.method, credentials.pair() if credentials else None)
        self.passwords, errors = read_passwords(self.profile)
        # The relay presents custom users' passwords to their servers: launched programs are given none.
        self.net.start(plan, credentials, self.profile.path, identity.relay_passwords(self.profile, self.passwords))
        web = self.net.start_web(self.profile, self.rundir.path)  # the Centre's web pages (access/webproxy.py)
        web_files = RunFiles(web_auth=str(web.auth) if web.auth else None)
        self._set(replace(self.state, web_proxy=web.proxy, web_pac=web.pac, files=web_files))
        # Recorded at once: after a kill -9 from here on, a later up/down still finds and removes the block.
        system_files, warnings = files.install_system_hosts(self.profile, plan, self.rundir.path.name)
        self._set(replace(self.state, files=self.state.files.merged(system_files)))
        self.inbox.start()
        run_files = files.write_support_files(self.profile, plan, self.rundir.path, credentials)
        riding = self.netwatch.start(self.net.io, ssh.main_socket(self.rundir.path))
        files_now, warned = self.state.files.merged(run_files), [*errors, *warnings, *riding]
        self._set(replace(self.state, plan=plan, files=files_now, warnings=warned))
        return plan

    @functools.cached_property
    def first_hop(self) -> tuple[str, int] | None:
        """Where the first ssh hop listens (ssh -G), asked once, when first needed."""
        return ssh.first_hop_address(self.profile)

    def _wait_for_first_hop(self) -> None:
        """Start no ssh while the first hop refuses even TCP (link down, laptop offline, sshd down): an ssh started
        then sits in SYN retransmits (1, 2, 4, 8 s apart) and is back seconds after the network; a fresh probe
        every 0.1 s starts it about one round trip after the network's return."""
        hop = self.first_hop
        if hop is None or self.stopping or accepts(hop, timeout=0.3):
            return
        self._set(replace(self.state, message=f"{self.state.message}; waiting for {hop[0]} port {hop[1]} to answer"))
        wait_accepting(hop, lambda: self.stopping)

    def _sleep(self, seconds: float, wake: Callable[[], bool] | None = None) -> None:
        """`seconds`, or until stopped, or `wake()` (asked every CERT_POLL) says so."""
        self.events.sleep(seconds, lambda: self.stopping, wake, CERT_POLL)

    def _refusal(self) -> str:
        """The gateway refused us: say whether the certificate is why, and how to renew it."""
        self._certificate_message(self.certs.find)
        return certs.refusal(self.profile, self.certs.cert, "\n".join(leg.messages() for leg in self.legs)).text

    def _certificate_message(self, look: Callable[[], object]) -> str:
        """The `up` message (certificate warning included); `look`: CertWatch.find at a start, .look while up."""
        look()  # the state takes the certificate found at its next write (_set)
        return self.certs.message()

    def _start_legs(self, plan: Plan) -> decisions.Failure | None:
        """Start ssh (and the agent) and wait until our listeners' connections can be carried; None when ready,
        else why not."""
        rundir = self.rundir.path
        plan = self.state.plan or plan  # with the endpoints that joined before a reconnect
        # ssh's own forwards, to private unix sockets: the plain transport, or beside the agent for a fast link.
        sockets = forwards.sockets_for(rundir, plan.forwards)
        socks_sock = socks.socket_path(rundir) if plan.socks_port is not None else None
        legs = ssh.legs(
            self.profile,
            plan,
            rundir,
            forward_sockets=forwards.by_name(plan.forwards, sockets),
            socks_socket=socks_sock,
            jump_session=self.sessions.wanted["jump"],
            main_session=self.sessions.wanted["main"],
        )
        self.legs = []
        jump = self._jump_leg(legs.jump_master)
        # Beside both logins, not before them: the certificate (ssh -G, ssh-keygen), the user's own forwards
        # (ssh -G per hop) and the agent's program take ~0.3 s of a loaded laptop.
        first, look = not self.state.reconnects, lambda: self._certificate_message(self.certs.find)
        side = sidework.start(self.profile, self.use_agent, first, look)
        transport = self.profile.gateway.transport
        agent = self.use_agent and decisions.agent_for_link(transport)
        if jump is not None:
            failure = self._await_master(jump, ssh.jump_socket(rundir), "the jump host")
            if failure is not None:
                return failure
        # Stale sockets of a killed ssh would pass the readiness checks below before ssh listens.
        waited: list[Path] = [*sockets.values(), *([socks_sock] if socks_sock else [])]
        for path in waited:
            with contextlib.suppress(OSError):
                path.unlink()
        # A ControlMaster with either transport: what joins later is forwarded through it (_forward_joined).
        compress = linkfigure.compress_main(
            self.profile, rundir, self.net.upstreams, self.use_agent, jump is not None, lambda: self.first_hop
        )
        main = Leg("main", ssh.compressed(legs.main) if compress else legs.main)
        self._launch_master(main, ssh.main_socket(rundir))
        failure = self._await_master(main, ssh.main_socket(rundir), "the workstation")
        if failure is not None:
            return failure
        self.netwatch.connected(lambda: self.first_hop)
        pgids = [leg.proc.pid for leg in self.legs if leg.proc]
        pid, sessions = main.proc.pid if main.proc else None, dict(self.sessions.wanted)
        self._set(replace(self.state, pid=pid, pgids=pgids, sessions=sessions))
        if agent:
            # While it starts, ssh's own channels carry connections: start-up costs no more than plain forwards.
            self.pending_agent = self._launch_agent()
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(accepts(path) for path in waited):
            if not main.alive():
                return self.sessions.failure(main)
            if self.stopping:
                return decisions.Failure("stopped")
            if time.monotonic() > deadline:
                return decisions.Failure("ssh did not open the forwards in time")
            time.sleep(0.01)
        self.net.upstreams.sockets = sockets
        self.net.upstreams.socks = socks_sock
        self.net.upstreams.control = ssh.main_socket(rundir)  # plain forwards' clients go to the master
        if agent:
            note = "ssh's own channels while the far-side agent starts"
            self._set(replace(self.state, transport="starting", transport_note=note))
            if transport == "agent" or not waited:
                failure = self._settle_agent(wait=True)
                if failure is not None:
                    return failure
        else:
            if transport == "plain":
                note = f"plain OpenSSH forwards: gateway.transport in {self.profile.path}"
                self.state = replace(self.state, transport_note=note)
            self._set(replace(self.state, transport="plain"))
        self.rounds.forget()
        message, riding = side.result()
        self._warn(riding)
        self._set(replace(self.state, state="up", message=message, checks=self._health(self.state.plan or plan)))
        return None

    def _jump_leg(self, argv: list[str] | None) -> Leg | None:
        """The jump master, started: the head start's when it is the one wanted, else a new one (None: no master)."""
        early, self.early_jump = self.early_jump, None
        if early is not None and (argv is None or early.argv != argv):
            early.stop()
            early = None
        if argv is None:
            return None
        if early is not None:
            self.legs.append(early)
            return early
        leg = Leg("jump", argv)
        self._launch_master(leg, ssh.jump_socket(self.rundir.path))
        return leg

    def _launch_master(self, leg: Leg, sock: Path) -> None:
        # A master killed by SIGKILL leaves its socket: waiting on a stale one would go on before the new master
        # listens (and the jump leg's ProxyCommand would fall back to a session-less hop: a Nagle stall).
        with contextlib.suppress(OSError):
            sock.unlink()
        leg.start(self.rundir.path, ssh.ssh_environ(self.profile))
        self.legs.append(leg)

    def _await_master(self, leg: Leg, sock: Path, what: str) -> decisions.Failure | None:
        """Until a ControlMaster leg's socket takes connections; None then, else why not."""
        if not wait_for(lambda: accepts(sock) or not leg.alive() or self.stopping, 15, interval=0.01):
            return decisions.Failure(f"{what} did not answer within 15 s")
        if self.stopping:
            return decisions.Failure("stopped")
        if not leg.alive():
            return self.sessions.failure(leg)
        return None

    def _launch_agent(self) -> concurrent.futures.Future[AgentSession]:
        """Start the far-side agent as a second session of the main leg's connection, on the listeners' loop."""
        assert self.net.io is not None
        argv = ssh.agent_argv(self.profile, self.rundir.path)
        # Like the legs: without password variables, and dying with the supervisor.
        spawn = {"env": ssh.ssh_environ(self.profile), "preexec_fn": functools.partial(die_with_parent, os.getpid())}
        options = AgentOptions(start_timeout=AGENT_START_TIMEOUT)
        if self.profile.gateway.agent_python:
            options = dataclasses.replace(options, pythons=(self.profile.gateway.agent_python,))
        start = asyncio.run_coroutine_threadsafe(AgentSession.start(argv, options, **spawn), self.net.io.loop)
        start.add_done_callback(lambda _: self.events.wake())  # _watch settles it at once
        return start

    def _settle_agent(self, wait: bool = False) -> decisions.Failure | None:
        """Once the agent's start has ended: connections go through it, or (it cannot run there, and the profile
        allows) plain forwards carry on — at once if ssh's channels already serve, else after a restart — and
        status says why. Not yet ended and not waiting: nothing."""
        pending = self.pending_agent
        if pending is None or not (wait or pending.done()):
            return None
        self.pending_agent = None
        try:
            agent = pending.result(AGENT_START_TIMEOUT + 5)
        except (AgentError, concurrent.futures.TimeoutError) as e:
            main = self.legs[-1]
            if not main.alive():
                return self.sessions.failure(main)
            if self.profile.gateway.transport == "agent":
                return decisions.Failure(f"the far-side agent did not start: {e or 'timed out'}")
            self.use_agent = False
            reason = str(e) if isinstance(e, AgentUnavailable) else f"the far-side agent did not start: {e}"
            self.state = replace(self.state, transport_note=f"plain OpenSSH forwards: {reason}")
            if self.net.upstreams.sockets:
                self._set(replace(self.state, transport="plain"))
                return None
            return decisions.Failure(f"{reason}; continuing with plain OpenSSH forwards", immediate=True)
        assert self.net.io is not None
        gauge = self.net.upstreams.gauge
        keep = functools.partial(agent.keepalive, rest=AGENT_PING_REST, fast=lambda: gauge.slow() is False)
        self.net.io.loop.call_soon_threadsafe(keep, AGENT_PING_EVERY, AGENT_PING_TIMEOUT, gauge.add)
        ended = asyncio.run_coroutine_threadsafe(agent.wait_closed(), self.net.io.loop)
        ended.add_done_callback(lambda _: self.events.wake())  # _watch sees it closed at once
        self.agent = agent
        self.net.upstreams.agent = agent
        python = agent.hello.get("python")
        note = f"far-side agent on python {python}" if python else None
        self._set(replace(self.state, transport="agent", transport_note=note))
        return None

    def _why_down(self) -> decisions.Failure:
        for leg in self.legs:
            if not leg.alive():
                return self.sessions.failure(leg)
        if self.netwatch.lost is not None:
            return decisions.Failure(self.netwatch.lost)
        if self.agent is not None and self.agent.closed:
            return decisions.Failure(f"the far-side agent ended: {self.agent.reason}")
        return decisions.Failure("health check failed")

    def _watch(self, plan: Plan) -> None:
        """While up: wait for what happens (a leg ends, the agent's start or end, a request, the finder's answer, a
        signal) or the next deadline (a health round, the certificate's message, a session's proof)."""
        next_health = time.monotonic() + HEALTH_EVERY
        self.finder.start(self.state.plan, forwards.direct(self.net.upstreams))
        next_cert = self.certs.next_change()
        while not self.stopping:
            if not all(leg.alive() for leg in self.legs):
                return
            if (self.agent is not None and self.agent.closed) or self.netwatch.lost is not None:
                return
            if self._settle_agent() is not None:
                return
            proofs = self.sessions.prove(self.legs, time.monotonic())
            self._answer_requests()
            if link := linkfigure.changes(self.net.upstreams, self.state.carrier, self.state.link_rtt):
                self._set(replace(self.state, carrier=link[0], link_rtt=link[1]))  # (the gauge wakes this loop)
            wanted = self.finder.answer()
            if wanted is not None:
                self.state = replace(self.state, found_rounds=self.state.found_rounds + 1)
                self._join(wanted)  # (writes the state if something joined)
                if self.state.found_rounds == 1:  # `run` and `ui` wait for the first (wait_found); later ones
                    self._set(self.state)  # reach the state file with the next health round
            now = time.monotonic()
            if now >= next_health or now >= next_cert:
                message = self._certificate_message(self.certs.look)
                if message != self.state.message:
                    self._set(replace(self.state, message=message))
                next_cert = self.certs.next_change()
            if now >= next_health:
                self._set(replace(self.state, checks=self._health(self.state.plan or plan)), routine=True)
                self.finder.start(self.state.plan, forwards.direct(self.net.upstreams))
                next_health = time.monotonic() + HEALTH_EVERY
            self.events.wait(min(next_health, next_cert, *proofs) - time.monotonic())

    def _health(self, plan: Plan) -> list[Check]:
        # A server that fails is asked about once more at the far end: `up` stops at once on a lasting cause.
        why = causes.Why(self.profile, self.passwords, self.net.upstreams, self.net.io, self.rundir.path)
        auth = identity.client_auth(self.profile, self.passwords)
        ups = self.net.upstreams  # (beside a standing-by agent, its channels time the link)
        clients = Clients(plan, auth, self._fetch, forwards.direct(ups), **linkfigure.free_samples(ups))
        return self.rounds.check(clients, 3.0, why.explain)

    def _answer_requests(self) -> None:
        """Carry the servers `ui` and `run` asked for (inbox.py), and answer once the state has them."""
        asked = self.inbox.take()
        if asked:
            self._join([w for one in asked for w in one.wanted])
            self.inbox.answer(asked)
        problems, self.inbox.problems = self.inbox.problems, []
        self._warn(problems)

    def _join(self, wanted: list[Wanted]) -> None:
        """Add wanted services to the running tunnel (addservices.py), and say so in the state."""
        plan = self.state.plan
        if plan is None or self.net.io is None:
            return
        done = addservices.add_services(
            self.profile,
            self.rundir.path,
            plan,
            wanted,
            self.net,
            agent_runs=self.agent is not None,
            credentials=self.credentials,
            files=self.state.files,
            note=self.state.found_note,
        )
        self._warn(done.warnings)
        if done.plan != plan or done.note != self.state.found_note:
            self._set(replace(self.state, plan=done.plan, files=done.files, found_note=done.note))

    def _warn(self, problems: list[str]) -> None:
        new = [p for p in problems if p not in self.state.warnings]
        if new:
            self._set(replace(self.state, warnings=[*self.state.warnings, *new]))

    def _stop_legs(self, keep_jump: bool = False) -> None:
        """Stop ssh and the agent; with keep_jump, the jump master lives on, for the next start (_jump_leg)."""
        self.netwatch.disconnected()
        self.net.upstreams.clear()
        agent, self.agent = self.agent, None
        if self.pending_agent is not None:
            self.pending_agent.cancel()  # its start, cancelled, stops its ssh
            self.pending_agent = None
        for leg in reversed(self.legs):
            if keep_jump and leg.name == "jump":
                self.early_jump = leg
            else:
                leg.stop()
        self.legs = []
        if agent is not None and self.net.io is not None:  # after ssh: on a dead link its ssh waits out 3 s
            with contextlib.suppress(Exception):
                self.net.io.run(agent.close(), 10)
