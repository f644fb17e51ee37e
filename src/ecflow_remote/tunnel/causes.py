"""Why a server does not answer, when waiting cannot change it: refused or unknown at the far end, no password.

A failed health check sees only a closed connection: ssh and the far-side agent end a client's connection the same
way whatever the far end said. So for a server whose check failed (not by a timeout), the supervisor asks the far
end once more, where the answer has words: through the agent, an OPEN that waits for the far side's connect()
(its code: refused, unknown-host, ...); through ssh's own channels, a stdio forward handed to the main leg's master,
whose refusal ssh logs as `channel N: open failed: connect failed: Connection refused` (or the resolver's words).
Only what another attempt would repeat word for word counts as lasting; a timeout, an unreachable host, a server
slow to answer may still change, and `up` waits for them as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ecflow_remote.access.passwords import read_passwords
from ecflow_remote.access.pipe import LoopThread, Upstreams
from ecflow_remote.errors import AgentError, AgentOpenError, ServerError, StreamTimeout
from ecflow_remote.plan import Endpoint
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport.agent import AgentSession
from ecflow_remote.transport.control import ask

PROBE_TIMEOUT = 3.0  # the far side answers a refused or unknown target in one round trip
# ssh's words for a channel the far side would not open (channels.c logs them at INFO), and the agent's codes
# (far.py open_error), for what another attempt repeats: nothing listens there, the name is unknown there.
_OPEN_FAILED = re.compile(r"channel \d+: open failed: ([^\n]*)")
_SSH_CODES = (
    (re.compile(r"Connection refused", re.I), "refused"),
    (
        re.compile(
            r"Name or service not known|Temporary failure in name resolution|No address associated with hostname|"
            r"nodename nor servname|Non-recoverable failure in name resolution|Name does not resolve",
            re.I,
        ),
        "unknown-host",
    ),
    (re.compile(r"administratively prohibited", re.I), "prohibited"),
)
LASTING_CODES = ("refused", "unknown-host", "prohibited")
# An ecFlow server's refusal of the user (white list, custom user and password): the same at every attempt.
_USER_REFUSED = re.compile(r"authentication failed|not allowed any access", re.I)


def ssh_code(reason: str) -> str | None:
    """The lasting cause ssh's `open failed` words name (refused, unknown-host, prohibited), else None."""
    for pattern, code in _SSH_CODES:
        if pattern.search(reason):
            return code
    return None


def open_failures(log_text: str) -> list[str]:
    """ssh's reasons for the channels the far side would not open, in the order logged."""
    return [m.group(1).strip() for m in _OPEN_FAILED.finditer(log_text)]


def far_words(code: str, endpoint: Endpoint, workstation: str, detail: str) -> str:
    """A lasting far-end cause in words: what the workstation saw, and what it means."""
    target = f"{endpoint.host}:{endpoint.port}"
    if code == "refused":
        return f"connection refused at {workstation}: nothing listens on {target} (is the server running there?)"
    if code == "unknown-host":
        return f"{endpoint.host} does not resolve at {workstation} ({detail}): check the host name in the profile"
    return f"{workstation}'s sshd does not let the tunnel reach {target} ({detail})"


@dataclass
class Why:
    """The supervisor's view, for explaining a failed server check: the profile, the passwords it read, what
    carries connections now (the agent on its loop, or the main leg's master) and the run directory (where the
    main leg logs: ssh-main.log)."""

    profile: Profile
    passwords: Mapping[str, str]
    upstreams: Upstreams
    io: LoopThread | None
    rundir: Path

    async def explain(self, endpoint: Endpoint, error: Exception) -> str | None:
        """Why `endpoint` cannot answer while `up` waits, in words; None when it may still answer."""
        if isinstance(error, TimeoutError | StreamTimeout):
            return None
        if isinstance(error, ServerError):
            return self._refused_user(endpoint, error)
        try:
            found = await asyncio.wait_for(self._ask_far_end(endpoint.host, endpoint.port), PROBE_TIMEOUT)
        except (TimeoutError, OSError, AgentError):
            return None
        if found is None:
            return None
        code, detail = found
        return far_words(code, endpoint, self.profile.gateway.host.host, detail)

    def _refused_user(self, endpoint: Endpoint, error: ServerError) -> str | None:
        if not _USER_REFUSED.search(error.server_text):
            return None
        said = error.server_text.strip()
        server = next((s for s in self.profile.servers if s.name == endpoint.name), None)
        if server is not None and server.password is not None and server.name not in self.passwords:
            _, problems = read_passwords(self.profile, [server.name])
            why = problems[0].split(": ", 2)[-1] if problems else "it could not be read when the tunnel started"
            return f"the server refused the request ({said}), and its password ({server.password}) was not read: {why}"
        return (
            f"the server refuses the request ({said}): check ecflow_user, custom_user and password of server "
            f"{endpoint.name} in {self.profile.path}"
        )

    async def _ask_far_end(self, host: str, port: int) -> tuple[str, str] | None:
        """(code, ssh's or the agent's words) when the far end refuses host:port for a lasting cause, else None."""
        route = self.upstreams.route((host, port))
        if isinstance(route, AgentSession) and self.io is not None:
            asked = asyncio.run_coroutine_threadsafe(_agent_open(route, host, port), self.io.loop)
            return await asyncio.wrap_future(asked)
        if self.upstreams.control is None:
            return None
        return await _master_open(self.upstreams.control, self.rundir / "ssh-main.log", host, port)


async def _agent_open(agent: AgentSession, host: str, port: int) -> tuple[str, str] | None:
    """On the agent's loop: an OPEN that waits for the far side's connect()."""
    try:
        chan = await agent.open(host, port, wait=True)
    except AgentOpenError as e:
        # "cannot connect to h:p from the far side: unknown host (Name or service not known)": the words in brackets
        words = str(e).split("from the far side: ", 1)[-1]
        inner = re.search(r"\((.*)\)$", words)
        return (e.code, inner.group(1) if inner else words) if e.code in LASTING_CODES else None
    chan.abort("only asked whether it opens")
    return None


async def _master_open(control: Path, log: Path, host: str, port: int) -> tuple[str, str] | None:
    """A stdio forward to host:port asked of ssh's master: refused, ssh has logged why (before it answers), and
    that line is the only one logged meanwhile (or all such lines agree), else None: the cause is not certain."""
    offset = _size(log)
    answer = await ask(control, (host, port), PROBE_TIMEOUT)
    if answer.opened or not answer.answered:
        return None
    reasons = set(open_failures(_read_from(log, offset)))
    codes = {ssh_code(r) for r in reasons}
    if len(codes) != 1 or None in codes:
        return None
    reason = reasons.pop()
    return codes.pop() or "", reason.split(": ", 1)[-1]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as f:
        f.seek(offset)
        return f.read(64 * 1024).decode(errors="replace")
    return ""
