"""`down` and `status` of the tunnels the run directory records: a broken or moved profile's, or every one (--all)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ecflow_remote.cli.app import Context

if TYPE_CHECKING:
    from ecflow_remote.errors import ProfileError
    from ecflow_remote.tunnel.running import Running


def profile_file(c: Context) -> Path:
    """The profile's path as `--profile`, $ECFLOW_REMOTE_PROFILE or the default names it, read or not."""
    from ecflow_remote.profile.load import default_profile_path

    return Path(c.profile_path).expanduser() if c.profile_path is not None else default_profile_path()


def running_despite(c: Context, problem: ProfileError) -> Running:
    """The tunnel running for a profile that cannot be read now (broken, moved, deleted: the run directory is
    keyed by the profile's path); else the profile's problem is what to say, as for any other command."""
    from ecflow_remote.errors import EcflowRemoteError
    from ecflow_remote.tunnel import running

    try:
        found = running.for_profile(profile_file(c))
    except (OSError, EcflowRemoteError):
        found = None  # no usable run directory either: the profile is the first thing to fix
    if found is None:
        raise problem
    return found


def down_despite(c: Context, problem: ProfileError) -> None:
    """`down` of a profile that cannot be read: its running tunnel stopped all the same, the problem said."""
    from ecflow_remote.tunnel import running

    found = running_despite(c, problem)
    click.echo(f"ecflow-remote: warning: {problem} (stopping the tunnel running for it all the same)", err=True)
    running.stop(found.rundir)
    click.echo("Tunnel down.")


def others_note(c: Context) -> None:
    """When `down` or `status` found no tunnel for this profile: those that do run (a profile moved since, another
    one), named with the way to stop them."""
    from ecflow_remote.tunnel import running

    here = running.for_profile(profile_file(c))
    others = [r.profile for r in running.running() if here is None or r.rundir != here.rundir]
    if others:
        click.echo(
            f"Running for other profiles: {', '.join(others)} (`ecflow-remote status --all` shows them, "
            "`ecflow-remote down --all` stops them)",
            err=True,
        )


def down_all() -> None:
    from ecflow_remote.tunnel import running

    stopped = running.stop_all()
    for r in stopped:
        click.echo(f"Tunnel down: {r.profile}")
    if not stopped:
        click.echo("No tunnel was running (leftovers, if any, removed).")


def reports_of_all(timeout: float) -> list[dict[str, Any]]:
    """`status --all`: a report of each running tunnel, live through its profile where that still reads and is
    the one the tunnel was started from, else as its supervisor last wrote it."""
    from ecflow_remote import status as status_view
    from ecflow_remote.errors import ProfileError
    from ecflow_remote.tunnel import running
    from ecflow_remote.tunnel.handle import Tunnel

    reports = []
    for r in running.running():
        if r.state is None:
            continue  # starting this very moment: nothing to show yet
        try:
            tunnel = Tunnel(Path(r.state.profile))
        except ProfileError as problem:
            reports.append(status_view.recorded(r.state, str(problem)))
            continue
        if tunnel.rundir.path != r.rundir.path:  # a path recorded by an older version, relative to elsewhere
            reports.append(status_view.recorded(r.state, f"{r.state.profile}: not found from here"))
        else:
            reports.append(status_view.report(tunnel, live=True, timeout=timeout))
    return reports
