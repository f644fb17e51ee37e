"""ecflow_ui's config dir for one profile: seeded once from the user's own, kept between runs, of which ecflow-remote
manages only the tunnel's server rows (servers.txt) and the session's server list."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ecflow_remote import uiservers as uiconfig
from ecflow_remote.errors import UiError
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_atomic
from ecflow_remote.safepath import check_dir
from ecflow_remote.ui.session import write_session
from ecflow_remote.ui.systemlists import SystemLists
from ecflow_remote.uiservers import UiServer

# What ecflow-remote remembers in the config dir: the rows it added (removed again when the profile drops their
# server) and the user's rows it points through the tunnel (found again when their local port has moved).
MARKER: Final = ".ecflow-remote.json"
# ecflow_ui's own lock files and sockets belong to the running instance that made them, not to the copy.
_NOT_COPIED: Final = ("*.lock", "*.sock", "*.tmp")


@dataclass(frozen=True)
class UiConfig:
    """What prepare_config made: the config dir and how its session was set up."""

    path: Path
    servers: tuple[UiServer, ...]
    # "created": a new session opening the profile's servers; "extended": the session there with them added;
    # "kept": the session left as it was (its shape was not understood), the servers are only listed.
    session: str
    seeded: bool = False  # made in this run (a copy of the user's own config dir)
    system: SystemLists = field(default_factory=lambda: SystemLists("none"))  # given to ecflow_ui (launch)
    notes: tuple[str, ...] = ()  # lines for the user (launch: certificates put where an old ecflow_ui looks)


def config_dir_for(profile_path: Path) -> Path:
    """The persistent ecflow_ui config dir of a profile, in the user's data dir, keyed as the run dir is."""
    import platformdirs

    key = hashlib.sha256(str(Path(profile_path).expanduser().resolve()).encode()).hexdigest()[:10]
    return Path(platformdirs.user_data_dir("ecflow-remote")) / "ecflow_ui" / key


# ------------------------------------------------------------------------------------------- server rows


def profile_ui_servers(profile: Profile, plan: Plan) -> list[UiServer]:
    """The profile's servers as ecflow_ui must see them through the tunnel.

    hosts and socks: the Centre's own names and ports (the launched UI's private hosts view maps the names to
    the loopback forwards), so node paths, ECF_LOGHOST names and the user's habits stay as at the Centre.
    local: localhost and the local port, the only way there.

    The user column (ecflow_ui 5.9's custom user, whose password it would look up in ECF_CUSTOM_PASSWD) stays
    empty: the UI sends its login name, and the relay on each server's endpoint presents that server's own identity
    (its ecflow_user, or its custom user and password), so the UI is given no password.
    """
    servers = []
    for server in profile.servers:
        if plan.by_centre_names:
            host, port = server.host, server.port
        else:
            host, port = "localhost", plan.endpoint(server.name).local_port
        # ecflow_ui 5.9's ssl flag and newer releases' protocol code agree on 0 plain and 1 ssl; 2 http and 3 https
        # only the newer ones know.
        code = {"http": 2, "https": 3}.get(server.protocol)
        servers.append(
            UiServer(
                name=server.name,
                host=host,
                port=port,
                favourite=True,
                ssl=server.protocol == "ssl",
                protocol=code,
            )
        )
    return servers


def merge_servers(
    own: Sequence[UiServer],
    ours: Sequence[UiServer],
    profile: Profile,
    env_user: str = "",
    aliases: Mapping[str, str] | None = None,
) -> tuple[list[UiServer], dict[str, str]]:
    """The user's server list with the profile's servers in it, and which of the user's rows now stand for a
    profile server (row name -> server name).

    A row of the same name, or one pointing at the same Centre host and port (or named in `aliases`, from an
    earlier run), now goes through the tunnel; every other row is kept as it was. A row standing for a server with
    a custom user loses its own user (the relay presents the profile's, and the UI has no password to send for
    another). `env_user` (an ECF_USER the UI inherited,
    which it is not given: ecflow_ui would apply it to every server) goes into the user column of the user's own
    rows that had none, so those keep the custom user they had.
    """
    by_name = {s.name: s for s in ours}
    by_target = {(p.host, p.port): p.name for p in profile.servers}
    relayed = {p.name for p in profile.servers if p.custom_user}
    merged: list[UiServer] = []
    found: dict[str, str] = {}
    for row in own:
        target = by_target.get((row.host, row.port)) or (aliases or {}).get(row.name)
        mine = by_name.get(row.name) or (by_name.get(target) if target else None)
        if mine is None:
            merged.append(replace(row, user=row.user or env_user))
            continue
        if row.name not in by_name:
            found[row.name] = mine.name
        # The user's flags (favourite, ssl) and own user stay, unless the profile names a custom user.
        merged.append(replace(row, host=mine.host, port=mine.port, user="" if mine.name in relayed else row.user))
    present = {row.name for row in own}
    merged.extend(s for s in ours if s.name not in present)
    return merged, found


# ------------------------------------------------------------------------------------------- config dir


@contextlib.contextmanager
def _locked(config_dir: Path) -> Iterator[None]:
    """Serialise the updates of one config dir: two `ui` at once each merge into the latest files."""
    with open(config_dir.parent / f".{config_dir.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _seed(dest: Path, user_dir: Path) -> None:
    """Make `dest` a copy of the user's config dir (or empty), whole or not at all."""
    # Its files say what ecflow_ui runs (custom commands, menus): never taken from where another account can write.
    if problem := check_dir(user_dir):
        raise UiError(
            f"your ecflow_ui config dir {user_dir} {problem.text}, so it is not copied: make it yours alone "
            "(chmod go-w), or point ECFLOWUI_CONFIG_DIR at another one."
        )
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        if user_dir.is_dir():
            try:
                shutil.copytree(
                    user_dir, staging, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_COPIED), dirs_exist_ok=True
                )
            except (OSError, shutil.Error) as e:
                raise UiError(
                    f"cannot copy your ecflow_ui config dir {user_dir}: {e}. Fix its permissions, or point "
                    "ECFLOWUI_CONFIG_DIR at another one."
                ) from None
        os.chmod(staging, 0o700)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _listed(row: UiServer, listed: UiServer) -> UiServer:
    return replace(row, host=listed.host, port=listed.port, system=True)


def _read_marker(dest: Path) -> dict[str, Any]:
    try:
        data = json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _names(value: object) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else set()


def prepare_config(
    dest: Path,
    profile: Profile,
    plan: Plan,
    user_dir: Path | None = None,
    env_user: str = "",
    system: Sequence[UiServer] = (),
) -> UiConfig:
    """The profile's ecflow_ui config dir at `dest`, ready for this tunnel: made from a copy of the user's own the
    first time (which is never touched), then kept; its servers.txt lists the profile's servers through the tunnel
    and its session opens them. Everything else in it is the UI's and the user's. `env_user`: see merge_servers.

    `system`: the system lists' servers (system.py), listed too, flagged as system servers, as ecflow_ui itself
    saves them after reading the lists; so a session naming one opens it at start-up, before ecflow_ui has read
    the lists. A name the profile or the user's own rows already hold is left to them."""
    user_dir = uiconfig.default_ui_config_dir() if user_dir is None else user_dir
    if user_dir.expanduser().resolve() == dest.resolve():
        raise UiError(f"ecflow-remote's ecflow_ui config dir {dest} is your own: unset ECFLOWUI_CONFIG_DIR")
    try:
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise UiError(f"cannot make {dest.parent} for ecflow_ui's config: {e.strerror}") from None
    with _locked(dest):
        seeded = not dest.exists()
        if seeded:
            _seed(dest, user_dir)
        marker = _read_marker(dest)
        managed = _names(marker.get("managed"))
        raw_aliases = marker.get("aliases")
        aliases = {str(k): str(v) for k, v in raw_aliases.items()} if isinstance(raw_aliases, dict) else {}
        servers_txt = dest / uiconfig.SERVERS_FILE
        ours = profile_ui_servers(profile, plan)
        listed = {s.name: s for s in system if s.name not in {o.name for o in ours}}
        wanted = {s.name for s in ours} | set(listed)
        rows = uiconfig.read_servers_txt(servers_txt) if servers_txt.exists() else []
        # Rows ecflow-remote added for servers no longer in the profile or the lists go; the user's own always stay.
        rows = [r for r in rows if r.name in wanted or r.name not in managed]
        merged, found = merge_servers(rows, ours, profile, env_user, aliases)
        present = {r.name for r in rows}
        merged = [_listed(r, listed[r.name]) if r.name in listed and r.name in managed else r for r in merged]
        merged += [s for s in listed.values() if s.name not in present]
        managed = (managed & wanted) | (wanted - present)
        uiconfig.write_servers_txt(servers_txt, merged)
        how = write_session(dest, [s.name for s in ours])
        record = {"profile": str(profile.path), "managed": sorted(managed), "aliases": found}
        write_atomic(dest / MARKER, json.dumps(record, indent=1) + "\n", mode=0o600)
    return UiConfig(dest, tuple(merged), how, seeded)
