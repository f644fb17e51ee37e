"""The supervisor's decisions as pure functions: what to do after a failure, how long to wait, when a hop gives no
session. Tested without ssh; the supervisor only carries them out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ecflow_remote.transport import link

# Capped at 10 s: a laptop back on the network should not wait long, and one ssh attempt is cheap.
BACKOFF = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
# After a refused certificate only a renewal helps (noticed at once); a slow retry spares the gateway's logs.
REFUSED_RETRY = 60.0
# A tunnel that was never up fails after this many attempts: a user is waiting for `up` to answer.
FIRST_START_ATTEMPTS = 3


@dataclass(frozen=True)
class Failure:
    """Why the legs went down, as the supervisor saw it."""

    message: str
    refused: bool = False  # the gateway refused the login (certificate, user)
    immediate: bool = False  # start again at once, not counted as an attempt (e.g. the agent fell back to plain)
    permanent: bool = False  # another attempt cannot help (see is_permanent)


@dataclass(frozen=True)
class NextStep:
    """What the supervisor does next."""

    action: Literal["fail", "retry", "await_renewal"]
    delay: float = 0.0


def backoff(attempt: int) -> float:
    return BACKOFF[min(max(attempt, 0), len(BACKOFF) - 1)]


def after_failure(failure: Failure, *, been_up: bool, attempt: int) -> NextStep:
    """`attempt`: failures since the tunnel was last up (0 for the first)."""
    if failure.immediate:
        return NextStep("retry")
    if not been_up and (failure.refused or failure.permanent or attempt + 1 >= FIRST_START_ATTEMPTS):
        return NextStep("fail")
    if failure.refused:
        # Retrying cannot help until the certificate is renewed: retry the moment it is, else now and then.
        return NextStep("await_renewal", REFUSED_RETRY)
    return NextStep("retry", backoff(attempt))


# ssh's messages that the next attempt would repeat word for word: a name that does not resolve, a port nobody
# listens on, a configuration ssh rejects, a host key it does not trust. A user waiting for `up` gets them at once.
_PERMANENT = re.compile(
    r"Could not resolve hostname|connect to (?:host )?\S+ port \d+: Connection refused|line \d+: |"
    r"bad configuration option|Can't open user config file|Host key verification failed",
    re.IGNORECASE,
)


def is_permanent(messages: str) -> bool:
    """Whether ssh's messages name a failure another attempt cannot change (while the tunnel has never been up: a
    tunnel that was up retries, since a laptop moving between networks sees these for a moment)."""
    return bool(_PERMANENT.search(messages))


def drops_session(*, has_session: bool, proven: bool, exit_code: int | None, messages: str, refused: bool) -> bool:
    """Whether a leg that ended shows its hop gives no interactive session (a Teleport proxy), so the next start
    goes without one. ssh exits 255 for its own errors; any other status is the remote command's, so the
    connection worked and the hop ended (or refused) the session itself. A hop that once held a session can: a
    later end of it (sshd restarted) is a fault, not a refusal."""
    if not has_session or proven or refused:
        return False
    return exit_code not in (None, 255) or bool(re.search(r"pty|shell request|session", messages, re.I))


def retry_message(message: str, delay: float) -> str:
    return f"{message}; retrying in {delay:.0f} s" if delay else message


def renewal_message(message: str) -> str:
    """A refused login of a tunnel that was up: it waits for the renewal (only then, never in `up`'s answer)."""
    return f"{message}; the tunnel reconnects by itself once the certificate is renewed (and tries every minute)"


def agent_for_link(transport: str) -> bool:
    """Whether this start runs the far-side agent: whenever the far side may need it, so all but `plain`. Where
    the link is fast new connections still take ssh's own channels (transport/link.py routes each one by the round
    trip measured through ssh), and a laptop that moves to a slow link has the agent for its next connection within
    seconds, without a reconnect. Its cost when idle: one small Python process on the workstation and a ping a
    second; its start at each (re)connect overlaps the readiness check (ssh's channels carry meanwhile)."""
    return transport != "plain"


def compress_plain(agent_usable: bool, slow: bool | None, first_hop_rtt: float | None) -> bool:
    """Whether the main leg runs ssh -C (zlib both ways, as the how-to's `ssh -C`): only where ssh's own channels
    carry a slow link, that is without an agent (`plain`, or a far side without python3: the agent compresses per
    stream, only what compresses, and on a LAN -C costs throughput: 24 MB/s of random bytes against 100). `slow`:
    the link as measured through the previous connection (None: never measured), else the first hop's handshake
    (None: behind a proxy of the user's own, taken as a home link)."""
    if agent_usable:
        return False
    if slow is not None:
        return slow
    return first_hop_rtt is None or first_hop_rtt >= link.SLOW
