"""Whether each ssh hop gives a pty session (the session keeps Nagle away: transport/ssh.py), as the supervisor
learns it: assumed at first, dropped at a hop's first refusal, proven by one that lasted, kept across reconnects."""

from __future__ import annotations

from collections.abc import Sequence

from ecflow_remote.transport import ssh
from ecflow_remote.tunnel import decisions
from ecflow_remote.tunnel.sshleg import Leg

PROOF = 5.0  # a pty session that lasted this long is proof the hop gives them (a refused one ends sooner)


class Sessions:
    """Per hop ("jump", "main"): whether its next start asks for a session, and whether one ever lasted."""

    def __init__(self) -> None:
        self.wanted = {"jump": True, "main": True}
        # A hop that once held a session can: a later end of it (sshd restarted) is a fault, not a refusal.
        self.proven: set[str] = set()

    def failure(self, leg: Leg) -> decisions.Failure:
        """Why `leg` ended: a hop that gives no session (its next start goes without one), or ssh's reason."""
        text = leg.messages()
        refused = ssh.is_auth_failure(text)
        if decisions.drops_session(
            has_session=self.wanted.get(leg.name, False),
            proven=leg.name in self.proven,
            exit_code=leg.exit_code,
            messages=text,
            refused=refused,
        ):
            self.wanted[leg.name] = False
            return decisions.Failure(
                f"{leg.name} leg: the hop gives no interactive session; continuing without (slower small requests)"
            )
        return decisions.Failure(
            f"{leg.name} leg: {ssh.explain(text)}", refused=refused, permanent=decisions.is_permanent(text)
        )

    def prove(self, legs: Sequence[Leg], now: float) -> list[float]:
        """Mark the sessions that have lasted PROOF by `now` (time.monotonic()) as proven; the moments (the same
        clock) at which the others will have."""
        unproven = [leg for leg in legs if self.wanted[leg.name] and leg.name not in self.proven]
        self.proven |= {leg.name for leg in unproven if now - leg.started > PROOF}
        return [leg.started + PROOF + 0.01 for leg in unproven if leg.name not in self.proven]
