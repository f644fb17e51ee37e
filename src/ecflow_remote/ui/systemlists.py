"""The Centre's system server lists for ecflow_ui: read from the workstation through the tunnel, rewritten for the
method, and handed to ecflow_ui as its ECFLOW_SYSTEM_SERVERS_LIST."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_atomic
from ecflow_remote.transport import ssh
from ecflow_remote.uiservers import UiServer

ENV: Final = "ECFLOW_SYSTEM_SERVERS_LIST"
LIST_FILE: Final = "ecflow_ui_system_servers"
_MAX_ROUNDS: Final = 4  # a list's includes, their includes, ...: a loop of includes ends here
_TIMEOUT: Final = 15.0

# Run by sh on the workstation: "--login" first reads the list of files from the user's login environment (as
# ecflow_ui there would get it); then each file is sent as "ECFR-FILE <size>" and its bytes, or "ECFR-FILE -1".
# A login shell may print anything (a motd, module messages): only the marked line counts.
_REMOTE = r"""
if [ "$1" = --login ]; then
  shift
  list=$("${SHELL:-/bin/sh}" -lc 'printf "\nECFR-LIST=%s\n" "${ECFLOW_SYSTEM_SERVERS_LIST-}"' </dev/null 2>/dev/null |
    sed -n 's/^ECFR-LIST=//p' | tail -n 1)
  printf 'ECFR-LIST %s\n' "$list"
  set -f; IFS=:; set -- $list; unset IFS
fi
for f do
  if [ -f "$f" ] && [ -r "$f" ]; then
    n=$(wc -c <"$f" | tr -d ' '); printf 'ECFR-FILE %s\n' "$n"; head -c "$n" "$f"
  else
    printf 'ECFR-FILE -1\n'
  fi
done
"""


# Asks the running tunnel to carry listed servers (rows, the files listing them); the tunnel's plan afterwards.
Carry = Callable[[Sequence[tuple[str, str, int]], Sequence[str]], Plan]


@dataclass(frozen=True)
class SystemLists:
    """The system server lists ecflow_ui gets, and what became of them."""

    source: str  # "profile" ([ui] system_servers), "workstation" (its login environment) or "none"
    paths: tuple[str, ...] = ()  # the files on the workstation
    servers: tuple[UiServer, ...] = ()  # every server they list, rewritten for the method
    unreachable: tuple[str, ...] = ()  # names listed there that the tunnel does not carry (not in the profile)
    missing: tuple[str, ...] = ()  # files the workstation could not read
    env: str | None = None  # the value of ECFLOW_SYSTEM_SERVERS_LIST for ecflow_ui
    error: str | None = None  # why nothing could be read


def parse_list(text: str) -> tuple[list[tuple[str, str, int]], list[str]]:
    """A system server list as ecflow_ui 5.9 reads one: `name host port` (blank-separated, more fields ignored),
    `#` comments, and lines starting with `/` naming further files to include. Lines it would skip are skipped."""
    rows: list[tuple[str, str, int]] = []
    includes: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("/"):
            if stripped not in includes:
                includes.append(stripped)
            continue
        fields = stripped.split()
        if len(fields) < 3 or not (fields[2].isascii() and fields[2].isdigit()) or not 1 <= int(fields[2]) <= 65535:
            continue
        name, host = fields[0], fields[1]
        # servers.txt (where ecflow_ui saves system servers too) cannot hold a comma.
        if "," in name or "," in host or any(r[0] == name for r in rows):
            continue
        rows.append((name, host, int(fields[2])))
    return rows, includes


def parse_reply(data: bytes, count: int, login: bool) -> tuple[str | None, list[bytes | None]]:
    """The remote script's output: the login environment's list (if asked) and each file's bytes (None: unreadable);
    ValueError when it is not that."""
    listed: str | None = None
    if login:
        line, _, data = data.partition(b"\n")
        if not line.startswith(b"ECFR-LIST "):
            raise ValueError("no list line")
        listed = line[len(b"ECFR-LIST ") :].decode("utf-8", "replace")
        count = len([p for p in listed.split(":") if p])
    files: list[bytes | None] = []
    for _ in range(count):
        line, _, data = data.partition(b"\n")
        if not line.startswith(b"ECFR-FILE "):
            raise ValueError("no file line")
        size = int(line[len(b"ECFR-FILE ") :])
        if size < 0:
            files.append(None)
            continue
        if len(data) < size:
            raise ValueError("short file")
        files.append(data[:size])
        data = data[size:]
    return listed, files


def _fetch(
    profile: Profile, control_dir: Path, paths: Sequence[str], login: bool
) -> tuple[str | None, list[bytes | None]]:
    args = ["--login", *paths] if login else list(paths)
    remote = f"sh -c {shlex.quote(_REMOTE)} sh {' '.join(shlex.quote(a) for a in args)}"
    argv = [*ssh.via_tunnel(profile, control_dir), ssh.destination(profile.gateway.host), remote]
    done = subprocess.run(
        argv, capture_output=True, timeout=_TIMEOUT, stdin=subprocess.DEVNULL, check=False, env=ssh.ssh_environ(profile)
    )
    if done.returncode == 255:
        raise OSError(ssh.explain(done.stderr.decode("utf-8", "replace")))
    try:
        return parse_reply(done.stdout, len(args) - int(login), login)
    except ValueError:
        raise OSError(f"unexpected answer from the workstation (exit {done.returncode})") from None


def rewrite(rows: Sequence[tuple[str, str, int]], profile: Profile, plan: Plan) -> tuple[list[UiServer], list[str]]:
    """The listed servers as ecflow_ui reaches them through this tunnel, and the names the tunnel does not carry.

    A server the tunnel carries (the profile's, or one the supervisor added for the lists, same host and port) gets
    exactly its servers.txt endpoint (ecflow_ui resets a row of the same name to the system list's host and port):
    local, localhost and its local port; hosts and socks, the Centre's names, which the private hosts view maps.
    Any other stays as listed (not reachable: the supervisor did not add it, see status)."""
    by_target = {(e.host.lower(), e.port): e for e in plan.servers()}
    servers: list[UiServer] = []
    unreachable: list[str] = []
    for name, host, port in rows:
        mine = by_target.get((host.lower(), port))
        if mine is None:
            unreachable.append(name)
        elif not plan.by_centre_names:
            host, port = "localhost", mine.local_port
        servers.append(UiServer(name=name, host=host, port=port, system=True))
    return servers, unreachable


def format_list(servers: Sequence[UiServer], paths: Sequence[str]) -> str:
    lines = [f"# ecflow-remote: the system server lists {', '.join(paths)} of your workstation, for this tunnel"]
    lines += [f"{s.name} {s.host} {s.port}" for s in servers]
    return "\n".join(lines) + "\n"


def system_lists(profile: Profile, plan: Plan, control_dir: Path, carry: Carry | None = None) -> SystemLists:
    """Read the profile's system server lists (else those the workstation's login environment names) through the
    running tunnel, and write ecflow_ui's rewritten copy in `control_dir` (the run dir). `carry` asks the running
    tunnel to carry the listed servers (rows, list files) and gives its plan then. Never raises for what the
    workstation says: a failure is in the result, and ecflow_ui starts without the lists."""
    paths = profile.ui.system_servers
    if paths == ():
        return SystemLists("none")
    login = paths is None
    source = "workstation" if login else "profile"
    wanted = list(paths or ())
    rows: list[tuple[str, str, int]] = []
    fetched: list[str] = []
    missing: list[str] = []
    tops = wanted
    try:
        for round_ in range(_MAX_ROUNDS):
            listed, files = _fetch(profile, control_dir, wanted, login and round_ == 0)
            if listed is not None:
                wanted = tops = list(dict.fromkeys(p for p in listed.split(":") if p))
                if not wanted:
                    return SystemLists("none")
            includes: list[str] = []
            for path, data in zip(wanted, files, strict=True):
                fetched.append(path)
                if data is None:
                    missing.append(path)
                    continue
                found, more = parse_list(data.decode("utf-8", "replace"))
                rows += [r for r in found if all(r[0] != seen[0] for seen in rows)]
                includes += [p for p in more if p not in fetched and p not in includes]
            wanted = includes
            if not wanted:
                break
    except (OSError, subprocess.SubprocessError) as e:
        return SystemLists(source, tuple(wanted), error=f"cannot read the system server lists: {e}")
    read = tuple(p for p in fetched if p not in missing)
    if carry is not None and rows:
        plan = carry(rows, read)
    servers, unreachable = rewrite(rows, profile, plan)
    if plan.through_socks:
        # ecflow_ui in its proxychains mode fetches the lists itself, by ssh from the workstation (through the ssh
        # that `ui` puts first on its PATH), includes too: it gets the paths there, and the Centre's names need no
        # rewriting.
        env = ":".join(p for p in tops if p not in missing) or None
    else:
        target = control_dir / LIST_FILE
        write_atomic(target, format_list(servers, read), mode=0o600)
        env = str(target)
    return SystemLists(source, read, tuple(servers), tuple(unreachable), tuple(missing), env)
