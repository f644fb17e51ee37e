"""The diagnosis's service links, through the doctor's SOCKS probe at the workstation: each ecFlow server (port,
ping, white list, password, as launched programs see it), then each log server (the profile's and the suites')."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ecflow_remote.access import identity
from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.doctor.report import Walk
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile, Server

# What a check of a link can fail with: our own errors and the system's (TimeoutError, asyncio.timeout's too, is one).
CHECK_FAILED = (EcflowRemoteError, OSError)
RESTART = "`ecflow-remote down`, then `ecflow-remote up`"
REFUSED_RE = re.compile(r"authentication failed|not allowed any access|passw", re.IGNORECASE)


async def check(
    w: Walk,
    profile: Profile,
    proxy: tuple[str, int],
    proxy_auth: tuple[str, str],
    timeout: float,
    tunnel: Plan | None = None,
) -> None:
    """Each ecFlow server (port, ping, white list, password, as launched programs see it), then each log server."""
    from ecflow_remote.clients.ecflow import AsyncEcflowClient

    via = _Via(profile.gateway.host.host, proxy, proxy_auth, timeout, profile.path)
    answering: dict[str, AsyncEcflowClient] = {}
    for s in profile.servers:
        await _port_open(w, via, s.host, s.port, f"port {s.name}")
        # The one rule for passwords: one not read is a warning, and the server is asked without it.
        passwords, unread = read_passwords(profile, [s.name])
        for problem in unread:
            w.warn(f"password {s.name}", problem, f'fix password = "{s.password}" of server {s.name}')
        auth = identity.auth_for(s, passwords)
        options = {"connect_timeout": timeout, "read_timeout": timeout, **auth.client_kwargs()}
        client = AsyncEcflowClient(s.host, s.port, proxy=proxy, proxy_auth=proxy_auth, protocol=s.protocol, **options)
        latency = await _ping(w, profile, s, client, bool(unread), timeout)
        w.ok(f"ping {s.name}", f"answers in {latency * 1000:.1f} ms")
        answering[s.name] = client
        w.ok(f"white list {s.name}", f"accepts user {client.user!r}")
        if s.custom_user and s.password is not None and not unread:
            w.ok(f"password {s.name}", f"accepted for custom user {s.custom_user!r}")
        await _as_launched(w, profile, s, passwords, (proxy, proxy_auth), tunnel, timeout)

    _inherited_user(w)
    for lg in profile.logservers:
        await _logserver(w, via, lg.host, lg.port, None)
    for host, port, used_by in await _suites_logservers(w, profile, answering, timeout):
        await _logserver(w, via, host, port, used_by)


@dataclass(frozen=True)
class _Via:
    """How the service checks reach the Centre: from the workstation, through the doctor's SOCKS probe."""

    workstation: str
    proxy: tuple[str, int]
    proxy_auth: tuple[str, str]
    timeout: float
    profile: Path  # named in what to do


async def _port_open(w: Walk, via: _Via, host: str, port: int, name: str) -> None:
    from ecflow_remote.clients.connect import close_stream, open_stream

    try:
        async with asyncio.timeout(via.timeout):
            _, writer = await open_stream(
                host, port, proxy=via.proxy, proxy_auth=via.proxy_auth, connect_timeout=via.timeout
            )
        await close_stream(writer)
    except CHECK_FAILED as e:
        w.fail(
            name,
            f"{host}:{port} cannot be reached from {via.workstation}: {e}",
            f"is the ecFlow server on {host}:{port} running? Check the host and port in {via.profile}, or ask "
            "its administrator",
        )
    else:
        w.ok(name, f"{host}:{port} open (from {via.workstation})")


async def _ping(w: Walk, profile: Profile, s: Server, client: Any, unread: bool, timeout: float) -> float:
    """The server's answer time; a refusal or no answer ends the walk at the link that broke."""
    from ecflow_remote.errors import ServerError

    try:
        async with asyncio.timeout(timeout):
            return float(await client.ping())
    except ServerError as e:
        _refused(w, profile, s, client.user, unread, e.server_text)
    except CHECK_FAILED as e:
        w.fail(f"ping {s.name}", str(e) or "no answer", "is it an ecFlow server? Check its port in the profile")


def _refused(w: Walk, profile: Profile, s: Server, user: str, unread: bool, server_text: str) -> NoReturn:
    """The server answered a ping with an error: which link that is (password, white list, or its own message)."""
    if not REFUSED_RE.search(server_text):
        w.fail(f"ping {s.name}", server_text, "see the server's message")
    else:
        w.ok(f"ping {s.name}", "the server answers (and refuses the request)")
        _refusal(w, profile, s, user, unread, server_text)


def _refusal(w: Walk, profile: Profile, s: Server, user: str, unread: bool, server_text: str) -> NoReturn:
    """Whose refusal it is: the custom user's password, else the white list."""
    if s.custom_user and s.password is not None:
        sent = "without a password (it was not read: see above)" if unread else f"with the password from {s.password}"
        w.fail(
            f"password {s.name}",
            f"{s.name} refused custom user {s.custom_user!r} {sent}: {server_text.strip()}",
            f"check the password in {s.password}, and that {s.custom_user!r} is on the server's password "
            "file and white list (ask its administrator)",
        )
    else:
        w.fail(
            f"white list {s.name}",
            f"{s.name} refuses user {user!r}: {server_text.strip()}",
            f'set ecflow_user = "<your Centre user name>" in [gateway] (or this [[server]]) of {profile.path}, '
            f"or ask the server's administrator to add {user!r} to its white list",
        )


async def _logserver(w: Walk, via: _Via, host: str, port: int, used_by: str | None) -> None:
    """A profile log server that does not answer is a broken link; one only a suite names is a warning."""
    from ecflow_remote.clients.logserver import AsyncLogServerClient

    name = f"logserver {host}:{port}"
    client = AsyncLogServerClient(
        host, port, proxy=via.proxy, proxy_auth=via.proxy_auth, connect_timeout=via.timeout, read_timeout=via.timeout
    )
    try:
        async with asyncio.timeout(via.timeout):
            version = await client.version()
    except CHECK_FAILED as e:
        detail = f"no answer from {host}:{port} (from {via.workstation}): {e or 'timed out'}"
        fix = f"is the log server on {host}:{port} running? (ecflow_logserver.sh; ask its administrator)"
        if used_by is None:
            w.fail(name, detail, fix)
        else:
            w.warn(name, f"{detail}; ECF_LOGHOST of {used_by} names it", f"{fix}; until then `output` asks the server")
    else:
        w.ok(name, f"answers (protocol version {version})" + (f"; named by {used_by}" if used_by else ""))


async def _as_launched(
    w: Walk, profile: Profile, s: Server, passwords: dict[str, str], probe: Any, tunnel: Plan | None, timeout: float
) -> None:
    """What a program started by `run` or `ui` gets from this server: its ping as ecflow_client sends it with the
    environment they hand it (no ECF_USER: the login name), to the running tunnel's endpoint, whose relay presents
    the server's own identity; without a running tunnel, rewritten as that relay would, through the probe."""
    from ecflow_remote.access import relay
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, commands
    from ecflow_remote.errors import ServerError
    from ecflow_remote.plan import server_endpoint
    from ecflow_remote.unix import login_name

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
    except CHECK_FAILED as e:
        w.fail(name, f"a program's request {how} got no answer: {e or 'timed out'}", "see `ecflow-remote status`")
    else:
        w.ok(name, f"a program started by `run`/`ui` is accepted ({who}, {how})")


def _inherited_user(w: Walk) -> None:
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
    w: Walk, profile: Profile, clients: dict[str, Any], timeout: float
) -> list[tuple[str, int, str]]:
    """The log servers the servers' suites name (ECF_LOGHOST/ECF_LOGPORT) that the profile does not: the tunnel
    finds and carries them, so doctor checks them too. (host, port, "server /suite, ...") each."""
    from ecflow_remote.clients.ecflow.logservers import find_logservers, logserver_problems
    from ecflow_remote.net import same_host

    trees = {}
    for name, client in clients.items():
        try:
            async with asyncio.timeout(timeout):
                trees[name] = await client.get_defs()
        except CHECK_FAILED as e:
            w.warn(f"suites {name}", f"could not read the definition: {e or 'timed out'}", None)
    for problem in logserver_problems(trees):
        w.warn("log server settings", problem, "fix ECF_LOGHOST/ECF_LOGPORT in the suite")
    named = [(lg.host, lg.port) for lg in profile.logservers]
    return [
        (u.host, u.port, ", ".join(f"{srv} /{suite}" for srv, suite in u.suites))
        for u in find_logservers(trees)
        if not any(same_host(u.host, host) and u.port == port for host, port in named)
    ]
