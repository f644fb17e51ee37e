"""The certificate's end as a running tunnel follows it, without a subprocess every few seconds.

Finding it costs `ssh -G`, `ssh-keygen` and perhaps `ssh-add -L` or `tsh status` (milliseconds each, but all day
long that is most of an idle tunnel's CPU). So it is found at each start of the legs; afterwards its files' stamps
(a stat) tell a renewal, and a certificate an agent or tsh may hold is asked for again only now and then (more often
while the expiry warning shows: a renewal then clears it). The `up` message follows the clock from the end found.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ecflow_remote.access import certs
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import ssh

ASK_EVERY = 300.0  # an agent's or tsh's certificate: how often to ask again, while no warning shows
ASK_WHILE_WARNING = 30.0
WARNING_EVERY = 5.0  # while the warning shows, its "expires in …" is redone this often


class CertWatch:
    """The certificate last found and what the supervisor's `up` message says about it."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.cert: certs.Certificate | None = None
        self._files: list[Path] = []
        self._stamps: list[tuple[int, int] | None] = []
        self._asks = False  # tsh or an agent may hold it: only asking tells a renewal
        self._next_ask = 0.0

    def find(self) -> certs.Certificate | None:
        """Look for it now, the whole way (at each start of the legs)."""
        settings = ssh.settings(self.profile)
        self.cert = certs.find(self.profile, settings)
        self._files = certs.certificate_files(settings)
        self._stamps = [_stamp(p) for p in self._files]
        self._asks = certs.uses_tsh(self.profile) or certs.agent_possible(settings)
        self._next_ask = time.monotonic() + (ASK_WHILE_WARNING if self.warning() else ASK_EVERY)
        return self.cert

    def look(self) -> None:
        """Cheaply: found again only when a file changed, or an agent's or tsh's turn has come."""
        now = time.monotonic()
        if [_stamp(p) for p in self._files] != self._stamps or (self._asks and now >= self._next_ask):
            self.find()

    def to_json(self) -> dict[str, Any] | None:
        return self.cert.to_json() if self.cert is not None else None

    def warning(self) -> str | None:
        return certs.warning(self.profile, self.cert)

    def message(self) -> str:
        """The `up` message, with a warning when the certificate ends within gateway.warn_before."""
        warning = self.warning()
        return f"tunnel up; {warning}" if warning else "tunnel up"

    def next_change(self) -> float:
        """When (time.monotonic()) the message may change by the clock alone: the warning's start, its next redo,
        or an agent's next turn."""
        now_wall, now = time.time(), time.monotonic()
        deadlines = [self._next_ask] if self._asks else []
        left = self.cert.seconds_left(now_wall) if self.cert is not None else None
        if left is not None and left > 0:
            if self.warning():
                deadlines.append(now + min(WARNING_EVERY, left))
            else:
                deadlines.append(now + max(0.0, left - self.profile.gateway.warn_before))
        return min(deadlines, default=float("inf"))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
