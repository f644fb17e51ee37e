"""The step-by-step diagnosis: walk the chain laptop → jump → workstation → servers, stop at the first broken link."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ecflow_remote.access import certs, identity
from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.clients.connect import accepts
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.plan import Plan
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile, Server, SshTarget
from ecflow_remote.tunnel.legs import die_with_parent
from ecflow_remote.tunnel.state import TunnelState

SSH_TIMEOUT = 20.0
RESTART = "`ecflow-remote down`, then `ecflow-remote up`"
REFUSED_RE = re.compile(r"authentication failed|not allowed any access|passw", re.IGNORECASE)


@dataclass
class Step:
    """One link of the chain: ok, fail (the first broken link), warn (works, but watch it) or skip (not reached)."""

    name: str
    status: str
    detail: str
    fix: str | None = None


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    @property
    def broken(self) -> Step | None:
        return next((s for s in self.steps if s.status == "fail"), None)

    def to_json(self) -> dict[str, Any]:
        broken = self.broken
        return {
            "ok": broken is None,
            "broken": broken.name if broken else None,
            "steps": [asdict(s) for s in self.steps],
        }

    def text(self) -> str:
        marks = {"ok": "ok  ", "fail": "FAIL", "warn": "warn", "skip": "  - "}
        width = max((len(s.name) for s in self.steps), default=10)
        lines = []
        for s in self.steps:
            lines.append(f"{marks.get(s.status, s.status)}  {s.name:{width}}  {s.detail}")
            if s.fix:
                # Not "fix:": the advice is a sentence of its own, often starting with "fix" or "check".
                lines.append(f"{'':4}  {'':{width}}  what to do: {s.fix}")
        broken = self.broken
        lines.append(f"\nBroken link: {broken.name}." if broken else "\nEvery link works.")
        return "\n".join(lines)


class _Stop(Exception):
    """The first broken link was found: the walk ends there."""


class _Walk:
    def __init__(self) -> None:
        self.report = Report()

    def ok(self, name: str, detail: str) -> None:
        self.report.steps.append(Step(name, "ok", detail))

    def warn(self, name: str, detail: str, fix: str | None = None) -> None:
        self.report.steps.append(Step(name, "warn", detail, fix))

    def fail(self, name: str, detail: str, fix: str | None = None) -> NoReturn:
        self.report.steps.append(Step(name, "fail", detail, fix))
        raise _Stop


def diagnose(profile_path: Path | None = None, timeout: float = 8.0) -> Report:
    """Check every link in order; the report ends at the first broken one (its `fix` says what to do)."""
    walk = _Walk()
    with contextlib.suppress(_Stop):
        _walk(walk, profile_path, timeout)
    return walk.report


def _walk(w: _Walk, profile_path: Path | None, timeout: float) -> None:
    ssh = shutil.which("ssh")
    if ssh is None:
        w.fail("ssh", "no OpenSSH client on PATH", "install it (Debian: apt install openssh-client)")
    version = subprocess.run([ssh, "-V"], capture_output=True, text=True).stderr.strip()
    w.ok("ssh", f"{ssh} ({version})")

    try:
        profile = load_profile(profile_path)
    except EcflowRemoteError as e:
        w.fail("profile", str(e), "edit the profile as the line above says (or write a new one: ecflow-remote init)")
    state = _running(profile)
    method = state.method if state is not None else None
    running = f"; a tunnel runs ({method} method)" if method else ""
    w.ok(
        "profile",
        f"{profile.path}: {len(profile.servers)} server(s), {len(profile.logservers)} log server(s){running}",
    )
    _ssh_config(w, profile)

    cert = certs.find(profile)
    if cert is None:
        w.warn(
            "certificate",
            "no SSH certificate found (ssh -G's CertificateFile/IdentityFile, the agent, tsh)",
            "if the gateway needs one: " + certs.renew_hint(profile),
        )
    elif certs.problem(profile, cert):
        w.fail("certificate", certs.summary(profile, cert, hint=False), certs.renew_hint(profile))
    elif certs.warning(profile, cert):
        w.warn("certificate", certs.summary(profile, cert), certs.renew_hint(profile))
    else:
        w.ok("certificate", certs.summary(profile, cert))

    gw = profile.gateway
    for i, hop in enumerate(gw.jump):
        _ssh_hop(w, profile, list(gw.jump[:i]), hop, f"jump {hop.host}" if len(gw.jump) > 1 else "jump")
    _ssh_hop(w, profile, list(gw.jump), gw.host, "workstation")

    tunnel = state.plan if state is not None and state.state == "up" else None
    with _probe(w, profile) as (proxy, proxy_auth):
        asyncio.run(_services(w, profile, proxy, proxy_auth, timeout, tunnel))

    if (method or gw.method) == "socks":
        pc = shutil.which("proxychains4")
        if pc is None:
            w.fail(
                "proxychains",
                "proxychains4 is not installed; the socks method needs it for programs that do not speak SOCKS",
                'Debian: apt install proxychains4; macOS: brew install proxychains-ng (or use method = "local")',
            )
        w.ok("proxychains", pc)

    exe = shutil.which("ecflow_ui.x") or shutil.which("ecflow_ui")
    if exe is None:
        w.warn("ecflow_ui", "not installed: `ecflow-remote ui` needs it", "Debian: apt install ecflow-client")
    else:
        w.ok("ecflow_ui", f"{exe} {_ui_version(exe)}")


# ------------------------------------------------------------------------------------------------ ssh links


def _running(profile: Profile) -> TunnelState | None:
    """The state of the tunnel running for this profile (`up --method` may differ from the profile's), if any."""
    from ecflow_remote.tunnel.rundir import RunDir

    try:
        rundir = RunDir.for_profile(profile.path)
        return rundir.read_state() if rundir.is_locked() else None
    except (EcflowRemoteError, OSError):
        return None  # no usable run directory: then no tunnel runs from it either


def _ssh_config(w: _Walk, profile: Profile) -> None:
    """ssh reads its configuration before it connects: an error there is no host's fault."""
    from ecflow_remote.transport import ssh

    config = profile.gateway.ssh_config
    argv = [*_ssh_base(profile), "-G", ssh.destination(ssh.first_hop(profile))]
    env = ssh.ssh_environ(profile)
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=SSH_TIMEOUT, env=env)
    where = str(config) if config else "~/.ssh/config, /etc/ssh/ssh_config"
    if done.returncode != 0:
        what, todo = ssh.explain_parts(done.stderr)
        w.fail("ssh config", what, todo or f"fix {where}")
    w.ok("ssh config", f"{where} read")


def _ssh_base(profile: Profile) -> list[str]:
    from ecflow_remote.transport import ssh

    argv = [ssh.ssh_binary()]
    if profile.gateway.ssh_config:
        argv += ["-F", str(profile.gateway.ssh_config)]
    return [
        *argv,
        *("-o", "BatchMode=yes", "-o", "ConnectTimeout=8", "-o", "ControlMaster=no", "-o", "ControlPath=none"),
    ]


def _ssh_hop(w: _Walk, profile: Profile, via: list[SshTarget], hop: SshTarget, name: str) -> None:
    from ecflow_remote.transport import ssh

    argv = _ssh_base(profile)
    if via:
        argv += ["-J", ",".join(str(j) for j in via)]
    argv += [ssh.destination(hop), "true"]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT,
            env=ssh.ssh_environ(profile),
        )
    except subprocess.TimeoutExpired:
        w.fail(name, f"{hop.host} did not answer within {SSH_TIMEOUT:.0f} s", "check the network, VPN and host name")
    if done.returncode == 0:
        w.ok(name, f"ssh {hop} works")
        return
    err = done.stderr
    if ssh.is_auth_failure(err):
        refused = certs.refusal(profile, certs.find(profile), err)
        w.fail(name, refused.what, refused.fix)
    if via and re.search(r"open failed|stdio forwarding failed|kex_exchange_identification|Connection closed", err):
        w.fail(
            name,
            f"the jump host could not open an SSH connection to {hop.host}:{hop.port or 22} (its sshd is down, or "
            "the host is off)",
            f"check that {hop.host} is up and runs sshd (ask its administrator), or choose another gateway.host",
        )
    if re.search(r"refused|timed out|No route|unreachable|resolve|closed", err, re.IGNORECASE):
        what, todo = ssh.explain_parts(err)
        w.fail(name, what, todo or f"check that {hop.host} is up and that the profile names it right")
    # Logged in, but no command allowed (a Teleport proxy): the link itself works.
    w.warn(name, f"ssh {hop} connected but ran no command: {ssh.explain(err)}")


@contextlib.contextmanager
def _probe(w: _Walk, profile: Profile) -> Iterator[tuple[tuple[str, int], tuple[str, str]]]:
    """A private SOCKS proxy at the workstation for the service checks: works whether a tunnel runs or not.

    As with the socks method, ssh -D listens on a unix socket in a 0700 directory (no other local user can reach
    it) and only our password-checking front, with a user and password made for this run, listens on loopback TCP.
    Yields the front's address, and that user and password (the clients' proxy and proxy_auth).
    """
    from ecflow_remote.access import socks
    from ecflow_remote.transport import ssh

    with tempfile.TemporaryDirectory(prefix="ecflow-remote-doctor-") as tmp:  # mkdtemp: 0700
        path = socks.socket_path(Path(tmp))
        argv = [*_ssh_base(profile), "-o", "ExitOnForwardFailure=yes", "-N", "-D", str(path)]
        if profile.gateway.jump:
            argv += ["-J", ",".join(str(j) for j in profile.gateway.jump)]
        argv.append(ssh.destination(profile.gateway.host))
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),  # no probe outlives a killed doctor
            env=ssh.ssh_environ(profile),
        )
        try:
            deadline = time.monotonic() + SSH_TIMEOUT
            while not accepts(path):
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr and proc.poll() is not None else ""
                    w.fail("workstation", f"could not open a SOCKS probe at the workstation: {ssh.explain(err)}")
                time.sleep(0.05)
            creds = socks.Credentials.new()
            with socks.SocksFront(("127.0.0.1", 0), path, creds) as front:
                yield front.listen, creds.pair()
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr:
                proc.stderr.close()


# ---------------------------------------------------------------------------------------------- services


async def _services(
    w: _Walk,
    profile: Profile,
    proxy: tuple[str, int],
    proxy_auth: tuple[str, str],
    timeout: float,
    tunnel: Plan | None = None,
) -> None:
    from ecflow_remote.clients.connect import close_stream, open_stream
    from ecflow_remote.clients.ecflow import AsyncEcflowClient
    from ecflow_remote.clients.logserver import AsyncLogServerClient
    from ecflow_remote.errors import ServerError

    workstation = profile.gateway.host.host
    answering: dict[str, AsyncEcflowClient] = {}

    async def port_open(host: str, port: int, name: str, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                _, writer = await open_stream(host, port, proxy=proxy, proxy_auth=proxy_auth, connect_timeout=timeout)
            await close_stream(writer)
        except (EcflowRemoteError, OSError, TimeoutError) as e:
            w.fail(
                name,
                f"{host}:{port} cannot be reached from {workstation}: {e}",
                f"is the {what} on {host}:{port} running? Check the host and port in {profile.path}, or ask "
                "its administrator",
            )
        w.ok(name, f"{host}:{port} open (from {workstation})")

    for s in profile.servers:
        await port_open(s.host, s.port, f"port {s.name}", "ecFlow server")
        # The one rule for passwords: one not read is a warning, and the server is asked without it.
        passwords, unread = read_passwords(profile, [s.name])
        for problem in unread:
            w.warn(f"password {s.name}", problem, f'fix password = "{s.password}" of server {s.name}')
        auth = identity.auth_for(s, passwords)
        client = AsyncEcflowClient(
            s.host,
            s.port,
            proxy=proxy,
            proxy_auth=proxy_auth,
            connect_timeout=timeout,
            read_timeout=timeout,
            protocol=s.protocol,
            **auth.client_kwargs(),
        )
        try:
            async with asyncio.timeout(timeout):
                latency = await client.ping()
        except ServerError as e:
            if not REFUSED_RE.search(e.server_text):
                w.fail(f"ping {s.name}", e.server_text, "see the server's message")
            w.ok(f"ping {s.name}", "the server answers (and refuses the request)")
            if s.custom_user and s.password is not None:
                sent = (
                    "without a password (it was not read: see above)"
                    if unread
                    else f"with the password from {s.password}"
                )
                w.fail(
                    f"password {s.name}",
                    f"{s.name} refused custom user {s.custom_user!r} {sent}: {e.server_text.strip()}",
                    f"check the password in {s.password}, and that {s.custom_user!r} is on the server's password "
                    "file and white list (ask its administrator)",
                )
            w.fail(
                f"white list {s.name}",
                f"{s.name} refuses user {client.user!r}: {e.server_text.strip()}",
                f'set ecflow_user = "<your Centre user name>" in [gateway] (or this [[server]]) of {profile.path}, '
                f"or ask the server's administrator to add {client.user!r} to its white list",
            )
        except (EcflowRemoteError, OSError, TimeoutError) as e:
            w.fail(f"ping {s.name}", str(e) or "no answer", "is it an ecFlow server? Check its port in the profile")
        w.ok(f"ping {s.name}", f"answers in {latency * 1000:.1f} ms")
        answering[s.name] = client
        w.ok(f"white list {s.name}", f"accepts user {client.user!r}")
        if s.custom_user and s.password is not None and not unread:
            w.ok(f"password {s.name}", f"accepted for custom user {s.custom_user!r}")
        await _as_launched(w, profile, s, passwords, (proxy, proxy_auth), tunnel, timeout)

    async def logserver(host: str, port: int, used_by: str | None) -> None:
        # A profile log server that does not answer is a broken link; one only a suite names is a warning.
        name = f"logserver {host}:{port}"
        logclient = AsyncLogServerClient(
            host, port, proxy=proxy, proxy_auth=proxy_auth, connect_timeout=timeout, read_timeout=timeout
        )
        try:
            async with asyncio.timeout(timeout):
                version = await logclient.version()
        except (EcflowRemoteError, OSError, TimeoutError) as e:
            detail = f"no answer from {host}:{port} (from {workstation}): {e or 'timed out'}"
            fix = f"is the log server on {host}:{port} running? (ecflow_logserver.sh; ask its administrator)"
            if used_by is None:
                w.fail(name, detail, fix)
            w.warn(name, f"{detail}; ECF_LOGHOST of {used_by} names it", f"{fix}; until then `output` asks the server")
            return
        w.ok(name, f"answers (protocol version {version})" + (f"; named by {used_by}" if used_by else ""))

    _inherited_user(w)
    for lg in profile.logservers:
        await logserver(lg.host, lg.port, None)
    for host, port, used_by in await _suites_logservers(w, profile, answering, timeout):
        await logserver(host, port, used_by)


async def _as_launched(
    w: _Walk, profile: Profile, s: Server, passwords: dict[str, str], probe: Any, tunnel: Plan | None, timeout: float
) -> None:
    """What a program started by `run` or `ui` gets from this server: its ping as ecflow_client sends it with the
    environment they hand it (no ECF_USER: the login name), to the running tunnel's endpoint, whose relay presents
    the server's own identity; without a running tunnel, rewritten as that relay would, through the probe."""
    from ecflow_remote.access import relay
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, commands
    from ecflow_remote.clients.ecflow.client import login_name
    from ecflow_remote.errors import ServerError
    from ecflow_remote.plan import server_endpoint

    me, name = login_name(), f"programs {s.name}"
    request = commands.ping_request(commands.Identity(commands.default_client_host(), me))
    carried = next((e for e in tunnel.servers() if e.name == s.name), None) if tunnel is not None else None
    if tunnel is not None and carried is None:
        w.fail(name, f"the running tunnel does not carry {s.name} (started before the profile named it)", RESTART)
    if tunnel is not None and carried is not None:
        route = tunnel.route(carried)
        client = AsyncEcflowClient(
            route.host,
            route.port,
            **route.proxy_kwargs(),
            connect_timeout=timeout,
            read_timeout=timeout,
            protocol=s.protocol,
            server=(s.host, s.port),
        )
        shown, how = relay.presented_for(carried, {}), f"through the running tunnel ({client.where})"
    else:
        endpoint = server_endpoint(profile, s.name, s.host, s.port, "127.0.0.1", s.port)
        shown = relay.presented_for(endpoint, identity.relay_passwords(profile, passwords))
        request = relay.present(request, me, shown) if shown else request
        client = AsyncEcflowClient(
            s.host,
            s.port,
            proxy=probe[0],
            proxy_auth=probe[1],
            connect_timeout=timeout,
            read_timeout=timeout,
            protocol=s.protocol,
        )
        how = "as the tunnel's relay presents it"
    who = f"{me!r}" + (f" presented as {'custom user ' * shown.custom}{shown.user!r}" if shown else "")
    try:
        async with asyncio.timeout(timeout):
            commands.expect_ok(await client.request(request), client.where)
    except ServerError as e:
        why = f"{s.name} refuses a program started by `run`/`ui` ({who}, {how}): {e.server_text.strip()}"
        fix = f"the running tunnel may lack the password: {RESTART}, where it can be read"
        w.fail(name, why, fix if tunnel is not None and s.custom_user else "see the server's message")
    except (EcflowRemoteError, OSError, TimeoutError) as e:
        w.fail(name, f"a program's request {how} got no answer: {e or 'timed out'}", "see `ecflow-remote status`")
    w.ok(name, f"a program started by `run`/`ui` is accepted ({who}, {how})")


def _inherited_user(w: _Walk) -> None:
    """An ECF_USER in the user's shell reaches programs started by `run`, and overrides every server's identity."""
    inherited = os.environ.get("ECF_USER", "").strip()
    if inherited:
        w.warn(
            "ECF_USER",
            f"ECF_USER={inherited} is set: `run` passes it on, so ecflow_client presents it to every server as a "
            "custom user (its password from ECF_CUSTOM_PASSWD), in place of each server's own identity",
            "unset it before `ecflow-remote run`: the tunnel presents each server's identity (`ui` ignores it)",
        )


async def _suites_logservers(
    w: _Walk, profile: Profile, clients: dict[str, Any], timeout: float
) -> list[tuple[str, int, str]]:
    """The log servers the servers' suites name (ECF_LOGHOST/ECF_LOGPORT) that the profile does not: the tunnel
    finds and carries them, so doctor checks them too. (host, port, "server /suite, ...") each."""
    from ecflow_remote.clients.ecflow.logservers import find_logservers, logserver_problems
    from ecflow_remote.tunnel.clients import same_host

    trees = {}
    for name, client in clients.items():
        try:
            async with asyncio.timeout(timeout):
                trees[name] = await client.get_defs()
        except (EcflowRemoteError, OSError, TimeoutError) as e:
            w.warn(f"suites {name}", f"could not read the definition: {e or 'timed out'}", None)
    for problem in logserver_problems(trees):
        w.warn("log server settings", problem, "fix ECF_LOGHOST/ECF_LOGPORT in the suite")
    named = [(lg.host, lg.port) for lg in profile.logservers]
    return [
        (u.host, u.port, ", ".join(f"{srv} /{suite}" for srv, suite in u.suites))
        for u in find_logservers(trees)
        if not any(same_host(u.host, host) and u.port == port for host, port in named)
    ]


def _ui_version(exe: str) -> str:
    target = exe if exe.endswith(".x") else (shutil.which("ecflow_ui.x") or exe)
    try:
        done = subprocess.run(
            [target, "--version"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return "(version unknown)"
    out = (done.stdout or done.stderr).strip().splitlines()
    return f"version {out[0]}" if out else "(version unknown)"
