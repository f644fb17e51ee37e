"""ecflow_ui through the tunnel: its command line, environment and start (the config dir: confdir.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ecflow_remote.errors import UiError
from ecflow_remote.plan import Plan
from ecflow_remote.tunnel.state import RunFiles
from ecflow_remote.ui import protocols
from ecflow_remote.ui.confdir import UiConfig, config_dir_for, prepare_config
from ecflow_remote.ui.systemlists import ENV as SYSTEM_ENV
from ecflow_remote.ui.systemlists import Carry, system_lists

if TYPE_CHECKING:
    from ecflow_remote.tunnel.handle import Tunnel

ECFLOW_UI: Final = "/usr/bin/ecflow_ui"


# ------------------------------------------------------------------------------------------------ launch


def find_ecflow_ui(chosen: str | None = None) -> str:
    """The ecflow_ui to run: the profile's [ui] ecflow_ui, else the first on PATH (a newer one from conda or
    Homebrew before the system's), else Debian's."""
    if chosen is not None:
        path = os.path.expanduser(chosen)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise UiError(f"[ui] ecflow_ui = {chosen!r} is not an executable file: fix the path in the profile")
        return path
    exe = shutil.which("ecflow_ui") or (ECFLOW_UI if os.path.exists(ECFLOW_UI) else None)
    if not exe:
        raise UiError("ecflow_ui is not installed (Debian: apt install ecflow-client; elsewhere: ECMWF's ecFlow)")
    return exe


def command(
    config_dir: Path, plan: Plan, files: RunFiles, extra: Sequence[str] = (), ecflow_ui: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The ecflow_ui command line and the environment additions for this tunnel."""
    exe = find_ecflow_ui(ecflow_ui)
    argv = [exe, "-confd", str(config_dir.absolute())]
    env: dict[str, str] = {}
    if plan.through_socks:
        if not files.proxychains:
            raise UiError("the running tunnel wrote no proxychains config: restart it (ecflow-remote down; up)")
        # ecflow_ui switches to its proxychains mode only when its own launcher prefixes exactly
        # `proxychains4` (-pc4), so the private config goes in through the environment, not `-f`.
        argv.append("-pc4")
        env["PROXYCHAINS_CONF_FILE"] = files.proxychains
    return [*argv, *extra], env


def display_problem(env: Mapping[str, str], args: Sequence[str] = (), platform: str | None = None) -> str | None:
    """Why ecflow_ui (Qt) could not open a window here, if it could not: on Linux it needs an X or Wayland display,
    and without one Qt aborts with a 20-line crash report. Qt's own choice of platform (-platform, QT_QPA_PLATFORM:
    offscreen, vnc...) is left to it."""
    import sys

    if not (platform or sys.platform).startswith("linux"):
        return None  # macOS: Cocoa needs no display variable
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM") or "-platform" in args:
        return None
    return (
        "no display: ecflow_ui needs a graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set). Run it from "
        "your desktop's terminal, or over ssh with -X; `ecflow-remote web` shows the suites in a browser instead"
    )


def launch(
    tunnel: Tunnel,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    user_dir: Path | None = None,
    config_dir: Path | None = None,
    hide: Sequence[str] = (),
    hostname: str | None = None,
    **popen: Any,
) -> tuple[subprocess.Popen[bytes], UiConfig]:
    """Start ecflow_ui through a running tunnel; the process (the caller waits on it) and its config (with the
    system server lists it was given).

    `config_dir`: the UI's config dir (default: the profile's persistent one, config_dir_for); `user_dir`: the
    user's own, copied into it the first time (default: $ECFLOWUI_CONFIG_DIR or ~/.ecflow_ui_v5)."""
    from ecflow_remote import programs

    # The profile's password variables stay out: the relay presents each custom user's password.
    full_env = tunnel.profile.without_password_variables(os.environ if env is None else env)
    missing = display_problem(full_env, extra)
    if missing:
        raise UiError(missing)
    plan = tunnel.plan()  # a clear error when no tunnel runs
    tunnel.wait_found()  # the log servers the suites name, in the hosts view ecflow_ui starts with
    files = tunnel.files()
    # ecflow_ui 5.9 reads ECF_USER into every server's client (a custom user, wanting a password, for each server
    # whose user column is empty): it goes into the user's own rows instead; the profile's servers get the login
    # name, which their relay turns into their own identity.
    env_user = full_env.pop("ECF_USER", "").strip()
    dest = config_dir_for(tunnel.profile.path) if config_dir is None else config_dir
    lists = system_lists(tunnel.profile, plan, tunnel.rundir.path, carry_through(tunnel))
    plan, files = tunnel.plan(), tunnel.files()  # with the servers the lists brought, and their names
    config = prepare_config(dest, tunnel.profile, plan, user_dir, env_user, lists.servers)
    if lists.env:
        full_env[SYSTEM_ENV] = lists.env
    argv, extra_env = command(config.path, plan, files, extra, tunnel.profile.ui.ecflow_ui)
    full_env.update(extra_env)
    found = protocols.found_certificates(tunnel.profile, tunnel.clients().fetch_certificate)
    full_env.update(protocols.tls_certificates(config.path, tunnel.profile, plan, found, hostname))
    notes: list[str] = []
    if any(s.protocol != "plain" for s in tunnel.profile.servers):
        got = protocols.release(argv[0], full_env)
        if found and (got is None or got < protocols.SSL_DIR_SINCE):
            ui = ".".join(map(str, got)) if got else "before 5.13.6 (its release unknown)"
            home = protocols.ui_home(full_env)
            notes = protocols.home_certificates(tunnel.profile, plan, found, home, hostname, ui)
        notes += protocols.unspoken(tunnel.profile, got)
    # The UI's config dir is its -confd; an inherited ECFLOWUI_CONFIG_DIR (the user's) must not leak past it.
    full_env.pop("ECFLOWUI_CONFIG_DIR", None)
    # Server load, Timeline and whole-file fetches run `ssh`/`scp` (ecflow_ui_transfer_file.sh): the tunnel's.
    programs.ssh_through_tunnel(tunnel, full_env)
    # ecflow_ui runs its own proxychains (-pc4): a second wrapper would double every connection.
    proc = programs.spawn(argv, plan, files, full_env, wrap_proxychains=False, hide=hide, hostname=hostname, **popen)
    return proc, replace(config, system=lists, notes=tuple(notes))


def carry_through(tunnel: Tunnel) -> Carry:
    """The running supervisor adds the system lists' servers it does not carry yet (a request in the run
    directory, answered within a moment); with plain OpenSSH forwards it cannot, and they stay unreachable."""

    def carry(rows: Sequence[tuple[str, str, int]], paths: Sequence[str]) -> Plan:
        from ecflow_remote.endpoints import Wanted

        return tunnel.carry([Wanted("server", name, host, port, tuple(paths)) for name, host, port in rows])

    return carry


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a launched ecflow_ui: its launch script waits for ecflow_ui.x on TERM, so the child goes first."""
    import signal

    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    with contextlib.suppress(OSError, ValueError):
        for pid in children.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
