"""ecflow_ui through the tunnel: private config dir, server list, session, launch."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ecflow_remote.errors import UiError
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.tunnel.state import RunFiles
from ecflow_remote.ui import servers as uiconfig
from ecflow_remote.ui.servers import UiServer

if TYPE_CHECKING:
    from ecflow_remote.tunnel.handle import Tunnel

ECFLOW_UI: Final = "/usr/bin/ecflow_ui"
CONFIG_DIR_NAME: Final = "ecflow_ui"
SESSION_DIR: Final = "default.session"
SESSION_FILE: Final = "session.json"
SESSION_TEMPLATE: Final = Path("/usr/share/ecflow/etc/ecflow_ui_test_session_template.json")
# ecflow_ui's own lock files and sockets belong to the running instance that made them, not to the copy.
_NOT_COPIED: Final = ("*.lock", "*.sock", "*.tmp")


@dataclass(frozen=True)
class UiConfig:
    """What prepare_config made: the private config dir and how its session was set up."""

    path: Path
    servers: tuple[UiServer, ...]
    # "created": a new session opening the profile's servers; "extended": the user's session with them added;
    # "kept": the user's session left as it was (its shape was not understood), the servers are only listed.
    session: str


# ------------------------------------------------------------------------------------------- server list


def profile_ui_servers(profile: Profile, plan: Plan) -> list[UiServer]:
    """The profile's servers as ecflow_ui must see them through the tunnel.

    hosts and socks: the Centre's own names and ports (the launched UI's private hosts view maps the names to
    the loopback forwards), so node paths, ECF_LOGHOST names and the user's habits stay as at the Centre.
    local: localhost and the local port, the only way there.

    The user column is ecflow_ui 5.9's custom user, per server: each server gets its own client, which calls
    set_user_name() with that column and then looks the password up in ECF_CUSTOM_PASSWD by (user, the host and
    port written here); without an entry it refuses to send a single request. So only a server with a custom_user
    has its name there (the supervisor's password file names exactly these hosts and ports). A server's
    ecflow_user is the relay's business: it renames the UI's own login name in each request.
    """
    servers = []
    for server in profile.servers:
        if plan.method == "local":
            endpoint = plan.endpoint(server.name)
            host, port = "localhost", endpoint.local_port
        else:
            host, port = server.host, server.port
        servers.append(UiServer(name=server.name, host=host, port=port, favourite=True, user=server.custom_user or ""))
    return servers


def merge_servers(
    own: Sequence[UiServer], ours: Sequence[UiServer], profile: Profile, env_user: str = ""
) -> list[UiServer]:
    """The user's server list with the profile's servers in it: a row of the same name, or (local method) one
    pointing at the same Centre host and port, now goes through the tunnel; every other row is kept as it was.

    The profile's custom user wins over the row's own user (the password file names the profile's). `env_user`
    (an ECF_USER the UI inherited, which it is not given: ecflow_ui would apply it to every server) goes into the
    user column of the user's own rows that had none, so those keep the custom user they had.
    """
    by_name = {s.name: s for s in ours}
    by_target = {(p.host, p.port): by_name[p.name] for p in profile.servers}
    merged: list[UiServer] = []
    for row in own:
        if row.name in by_name:
            # The user's flags (favourite, ssl) and own user stay, unless the profile names a custom user.
            mine = by_name.pop(row.name)
            merged.append(replace(row, host=mine.host, port=mine.port, user=mine.user or row.user))
        elif (row.host, row.port) in by_target:
            target = by_target[(row.host, row.port)]
            merged.append(replace(row, host=target.host, port=target.port, user=target.user or row.user))
        else:
            merged.append(replace(row, user=row.user or env_user))
    merged.extend(s for s in ours if s.name in by_name)
    return merged


# ------------------------------------------------------------------------------------------------ session


def _default_session() -> dict[str, Any]:
    try:
        data = json.loads(SESSION_TEMPLATE.read_text())
        if isinstance(data, dict):
            return data
    except (OSError, ValueError):
        pass
    # The template's shape, for installs without it: one window, one tab, a tree and an info panel.
    tree = {"type": "tree", "dockId": "dock_0", "breadcrumbs": {"active": "1"}, "state": ""}
    info = {"type": "info", "dockId": "dock_1", "breadcrumbs": {"active": "1"}, "frozen": "false", "detached": "false"}
    tab = {"server": [], "widgetCount": "2", "widget_0": tree, "widget_1": info}
    window = {"infoPanelCount": "2", "tabCount": "1", "currentTabId": "0", "tab_0": tab}
    return {"windowCount": "1", "topWindowId": "0", "window_0": window}


def _session_servers(session: dict[str, Any]) -> list[Any] | None:
    """The top window's current tab's server list (the one ecflow_ui shows first), or None if not understood."""
    window = session.get(f"window_{session.get('topWindowId', '0')}")
    if not isinstance(window, dict):
        return None
    tab = window.get(f"tab_{window.get('currentTabId', '0')}")
    if not isinstance(tab, dict):
        return None
    servers = tab.setdefault("server", [])
    return servers if isinstance(servers, list) else None


def write_session(config_dir: Path, names: Sequence[str]) -> str:
    """Make ecflow_ui open `names` at start-up: a new session, or the copied one with them added.

    The user's session is kept (their windows, tabs and layout) and only gains the profile's servers in the tab
    it opens on; a session we cannot read is left alone rather than replaced.
    """
    path = config_dir / SESSION_DIR / SESSION_FILE
    if path.exists():
        try:
            session = json.loads(path.read_text())
        except (OSError, ValueError):
            return "kept"
        servers = _session_servers(session) if isinstance(session, dict) else None
        if servers is None:
            return "kept"
        servers.extend(n for n in names if n not in servers)
        how = "extended"
    else:
        session = _default_session()
        servers = _session_servers(session)
        assert servers is not None, "the built-in session has a tab"
        servers[:] = list(names)
        how = "created"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(session, indent=4) + "\n")
    except OSError as e:
        raise UiError(f"cannot write ecflow_ui's session {path}: {e.strerror}") from None
    return how


# ------------------------------------------------------------------------------------------- config dir


def prepare_config(
    dest: Path, profile: Profile, plan: Plan, user_dir: Path | None = None, env_user: str = ""
) -> UiConfig:
    """A fresh private ecflow_ui config dir at `dest`: a copy of the user's (never touched itself), whose
    servers.txt lists the profile's servers through the tunnel and whose session opens them. `env_user`: see
    merge_servers."""
    user_dir = uiconfig.default_ui_config_dir() if user_dir is None else user_dir
    if user_dir.expanduser().resolve() == dest.resolve():
        raise UiError(f"the private ecflow_ui config dir {dest} is the user's own: unset ECFLOWUI_CONFIG_DIR")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the destination and swapped in whole: a failure never leaves a half-made dir in use.
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        if user_dir.is_dir():
            try:
                shutil.copytree(
                    user_dir,
                    staging,
                    symlinks=True,
                    ignore=shutil.ignore_patterns(*_NOT_COPIED),
                    dirs_exist_ok=True,
                )
            except (OSError, shutil.Error) as e:
                raise UiError(
                    f"cannot copy your ecflow_ui config dir {user_dir}: {e}. Fix its permissions, or point "
                    "ECFLOWUI_CONFIG_DIR at another one."
                ) from None
        servers_txt = staging / uiconfig.SERVERS_FILE
        own = uiconfig.read_servers_txt(servers_txt) if servers_txt.exists() else []
        ours = profile_ui_servers(profile, plan)
        merged = merge_servers(own, ours, profile, env_user)
        uiconfig.write_servers_txt(servers_txt, merged)
        how = write_session(staging, [s.name for s in ours])
        os.chmod(staging, 0o700)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return UiConfig(dest, tuple(merged), how)


def remove_config(path: Path) -> None:
    """Remove a private config dir made by prepare_config (it lives in the tunnel's run dir)."""
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ launch


def command(
    config_dir: Path, plan: Plan, files: RunFiles, extra: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """The ecflow_ui command line and the environment additions for this tunnel."""
    exe = ECFLOW_UI if os.path.exists(ECFLOW_UI) else shutil.which("ecflow_ui")
    if not exe:
        raise UiError("ecflow_ui is not installed (Debian: apt install ecflow-client; elsewhere: ECMWF's ecFlow)")
    argv = [exe, "-confd", str(config_dir.absolute())]
    env: dict[str, str] = {}
    if plan.method == "socks":
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
    hide: Sequence[str] = (),
    hostname: str | None = None,
    **popen: Any,
) -> tuple[subprocess.Popen[bytes], UiConfig]:
    """Start ecflow_ui through a running tunnel; the process (the caller waits on it) and its config."""
    from ecflow_remote import launch as launcher

    full_env = dict(os.environ if env is None else env)
    missing = display_problem(full_env, extra)
    if missing:
        raise UiError(missing)
    plan = tunnel.plan()  # a clear error when no tunnel runs
    files = tunnel.files()
    # ecflow_ui 5.9 reads ECF_USER into every server's client (a custom user, wanting a password, for each server
    # whose user column is empty): custom users go per server into the column instead, never into ECF_USER.
    env_user = full_env.pop("ECF_USER", "").strip()
    config = prepare_config(tunnel.rundir.path / CONFIG_DIR_NAME, tunnel.profile, plan, user_dir, env_user)
    argv, extra_env = command(config.path, plan, files, extra)
    full_env.update(extra_env)
    # The UI's config dir is its -confd; an inherited ECFLOWUI_CONFIG_DIR (the user's) must not leak past it.
    full_env.pop("ECFLOWUI_CONFIG_DIR", None)
    if files.custom_passwd:
        # The supervisor's password file (0600) for the profile's custom users, by the hosts and ports the UI's
        # servers.txt names; it replaces an inherited one, as `run` does.
        full_env["ECF_CUSTOM_PASSWD"] = files.custom_passwd
    # ecflow_ui runs its own proxychains (-pc4): a second wrapper would double every connection.
    proc = launcher.spawn(argv, plan, files, full_env, wrap_proxychains=False, hide=hide, hostname=hostname, **popen)
    return proc, config


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
