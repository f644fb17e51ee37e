"""Services added to a running tunnel (found log servers, system servers `ui` asks for): placed in its plan,
forwarded through the main leg, listened for, and named in the files launched programs read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ecflow_remote.access.socks import Credentials
from ecflow_remote.endpoints import Wanted, alias_net
from ecflow_remote.errors import EcflowRemoteError, NoAddressLeft
from ecflow_remote.net import free_port, port_free
from ecflow_remote.plan import Endpoint, Plan, added, merge, without
from ecflow_remote.profile.model import Profile
from ecflow_remote.tunnel import files as run_files
from ecflow_remote.tunnel import forwards
from ecflow_remote.tunnel.listeners import Listeners
from ecflow_remote.tunnel.state import RunFiles


@dataclass
class Added:
    """The running tunnel after services were added: its plan, run files and note on what waits; warnings for
    status."""

    plan: Plan
    files: RunFiles
    note: str | None
    warnings: list[str] = field(default_factory=list)


def add_services(
    profile: Profile,
    rundir: Path,
    plan: Plan,
    wanted: list[Wanted],
    net: Listeners,
    *,
    agent_runs: bool,
    credentials: Credentials | None,
    files: RunFiles,
    note: str | None,
) -> Added:
    """Add wanted services: ssh's forwards through the main leg's control socket, listeners on the supervisor's
    loop, the hosts view. What ssh could not forward waits (named in status; the next round tries again) unless
    the agent carries it. `note`: the last round's, kept by a call that tries nothing new."""
    try:
        merged = merge(plan, wanted, alias_net(profile), port_free, free_port, profile.gateway.ecflow_user)
    except NoAddressLeft as e:
        return Added(plan, files, note, [str(e)])
    warnings: list[str] = []
    new = [e for e in added(plan, merged) if e.forwarded]
    why = _forward(profile, rundir, new, net)
    waiting = new if why is not None and not agent_runs else []
    merged = without(merged, waiting)
    try:
        net.add([e for e in new if e not in waiting])
    except OSError as e:  # a port taken since it was chosen: the next round picks another
        merged, waiting = plan, []
        warnings.append(f"could not listen for {', '.join(f'{n.host}:{n.port}' for n in new)} yet: {e}")
    if merged.hosts != plan.hosts:
        files, problems = rewrite_files(profile, merged, rundir, credentials, files)
        warnings += problems
    note = uncarried_note(waiting, why) if waiting and why else (None if new else note)
    return Added(merged, files, note, warnings)


def _forward(profile: Profile, rundir: Path, new: list[Endpoint], net: Listeners) -> str | None:
    """ssh's own forwards for the new endpoints, beside the first ones (with the agent: taken while the link is
    fast); None when added, else ssh's reason."""
    if not new:
        return None
    sockets = forwards.sockets_for(rundir, new)
    why = forwards.ControlForwards(profile, rundir, new, sockets).result()
    if why is None:
        net.upstreams.sockets = {**net.upstreams.sockets, **sockets}
    return why


def rewrite_files(
    profile: Profile,
    plan: Plan,
    rundir: Path,
    credentials: Credentials | None,
    old: RunFiles,
) -> tuple[RunFiles, list[str]]:
    """The launched programs' files again for a plan with new names (the hosts view; the opt-in system block):
    programs launched from now on see them. The run files, and problems for the status warnings."""
    written = old.merged(run_files.write_support_files(profile, plan, rundir, credentials))
    if not old.system_hosts:
        return written, []
    try:
        block, warnings = run_files.install_system_hosts(profile, plan, rundir.name)
    except EcflowRemoteError as e:
        return written, [f"the names found since up are not in {old.system_hosts}: {e}"]
    return written.merged(block), warnings


def uncarried_note(endpoints: Sequence[Endpoint], why: str) -> str:
    """Why found endpoints are not reachable: ssh could not add their forwards (plain transport, no agent)."""
    names = ", ".join(f"{e.host}:{e.port}" for e in endpoints)
    return f"found {names}, which ssh could not forward ({why}); the next round tries again"
