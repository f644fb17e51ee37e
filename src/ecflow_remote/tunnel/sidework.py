"""What the supervisor's start does beside the ssh logins, in a thread: none of it is needed before they end."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh
from ecflow_remote.transport.agent.bootstrap import far_source


def start(
    profile: Profile, agent: bool, first: bool, certificate_message: Callable[[], str]
) -> concurrent.futures.Future[tuple[str, list[str]]]:
    """The `up` message (the certificate's check: ssh -G, ssh-keygen) and, at the first start, warnings about the
    user's own forwards (ssh -G per hop); with the agent, its program is made too. About 0.3 s of a loaded 2-CPU
    laptop that would otherwise come before the main leg's login (measured), here it overlaps the logins."""

    def work() -> tuple[str, list[str]]:
        if agent:
            far_source()  # cached: the agent's start finds it made
        return certificate_message(), ssh.riding_forwards(profile) if first else []

    pool = concurrent.futures.ThreadPoolExecutor(1, "side")
    try:
        return pool.submit(work)
    finally:
        pool.shutdown(wait=False)
