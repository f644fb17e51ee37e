"""`ssh` and `scp` for programs started by `run` and `ui`: first on their PATH, they reach any Centre host through
the running tunnel (its jump master, the profile's ssh config, the Centre user), as ecflow_ui's file transfers
(Server load, Timeline, whole files) and the user's own commands expect to at the Centre.

The run dir gets two small sh scripts (bin/ssh, bin/scp) that run this module with a spec (wrapper.json) written
next to them; the module rewrites the arguments and execs the real OpenSSH program:
- the destination's user goes when it is empty or the laptop's own login name (ecflow_ui passes $USER): the
  Centre account (the workstation's user in the profile) is used instead;
- `localhost` (ecflow_ui's host in its proxychains mode, and the local method's server rows) is the workstation;
- ecflow_ui's own `ProxyCommand=nc -x 127.0.0.1:PORT` (SOCKS without a password) is dropped: the tunnel's way in
  replaces it;
- the tunnel's options (transport/ssh.via_tunnel) come after the caller's, so an option the caller gives wins.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_atomic
from ecflow_remote.transport import ssh

BIN_DIR: Final = "bin"
SPEC_FILE: Final = "wrapper.json"
PROGRAMS: Final = ("ssh", "scp")
# Options taking an argument (OpenSSH 9): the first word that is neither an option nor its argument is the
# destination (ssh) or an operand (scp).
_SSH_ARGS: Final = frozenset("BbcDEeFIiJLlmOoPpQRSWw")
_SCP_ARGS: Final = frozenset("cDFiJloPSX")
_LOCAL_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})


@dataclass(frozen=True)
class Spec:
    """What the wrapper needs to know, written by install() for the run dir's tunnel."""

    ssh: str  # the real programs
    scp: str
    options: list[str]  # via_tunnel's options (without the program)
    workstation: str  # the host `localhost` stands for
    workstation_port: int | None
    user: str | None  # the Centre account; None: the ssh config decides
    local_user: str  # the laptop's login name, which ecflow_ui passes as the remote user
    # The profile's password variables (`password = "env:VAR"`): never in this ssh's environment, as in the tunnel's.
    password_variables: list[str] = field(default_factory=list)


def make_spec(profile: Profile, control_dir: Path) -> Spec:
    from ecflow_remote.unix import login_name  # here: the wrapper's own runs (each ssh/scp) never need it

    argv = ssh.via_tunnel(profile, control_dir)
    host = profile.gateway.host
    return Spec(
        ssh=argv[0],
        scp=shutil.which("scp") or "scp",
        options=argv[1:],
        workstation=host.host,
        workstation_port=host.port,
        user=host.user,
        local_user=login_name(missing=os.environ.get("USER", "")),  # ecflow_ui passes $USER
        password_variables=sorted(profile.password_variables()),
    )


def install(profile: Profile, control_dir: Path) -> Path:
    """Write the spec and the ssh/scp scripts in the run dir; the directory to put first on PATH."""
    spec = make_spec(profile, control_dir)
    spec_path = control_dir / SPEC_FILE
    write_atomic(spec_path, json.dumps(asdict(spec), indent=1) + "\n", mode=0o600)
    bin_dir = control_dir / BIN_DIR
    bin_dir.mkdir(mode=0o700, exist_ok=True)
    for program in PROGRAMS:
        # -E: the launched program's PYTHON* variables are not ours; the package is found as when ecflow-remote ran.
        script = (
            "#!/bin/sh\n# ecflow-remote: this tunnel's ssh (see ecflow_remote/transport/wrapper.py)\n"
            f"exec {shlex.quote(sys.executable)} -E -m ecflow_remote.transport.wrapper {program} "
            f'{shlex.quote(str(spec_path))} "$@"\n'
        )
        write_atomic(bin_dir / program, script, mode=0o700)
    return bin_dir


def _split_user(text: str) -> tuple[str | None, str]:
    user, at, host = text.rpartition("@")
    return (user, host) if at else (None, text)


def _host(spec: Spec, host: str) -> tuple[str, bool]:
    """The Centre host for `host`, and whether it is the workstation standing for localhost."""
    if host.lower().strip("[]") in _LOCAL_NAMES:
        return spec.workstation, True
    return host, False


def _ours(spec: Spec, extra: Sequence[str] = ()) -> list[str]:
    argv = [*spec.options, *extra]
    if spec.user:
        argv += ["-o", f"User={spec.user}"]
    return argv


def _keep_user(spec: Spec, user: str | None) -> bool:
    return bool(user) and user != spec.local_user


def _is_socks_proxy(value: str) -> bool:
    # ecflow_ui's proxychains-mode transfer: `ProxyCommand=nc -x 127.0.0.1:PORT %h %p`, a SOCKS proxy without the
    # tunnel's password.
    key, _, command = value.partition("=")
    return key.strip().lower() == "proxycommand" and command.strip().startswith("nc -x 127.0.0.1:")


def _options(argv: Sequence[str], with_arg: frozenset[str]) -> tuple[list[str], int]:
    """The leading options (ecflow_ui's socks ProxyCommand dropped) and the index of the first operand."""
    kept: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return kept, i + 1
        if not arg.startswith("-") or arg == "-":
            break
        letter = arg[1]
        if letter in with_arg:
            value = arg[2:] if len(arg) > 2 else (argv[i + 1] if i + 1 < len(argv) else "")
            step = 1 if len(arg) > 2 else 2
            if not (letter == "o" and _is_socks_proxy(value)):
                kept += argv[i : i + step]
            i += step
            continue
        kept.append(arg)
        i += 1
    return kept, i


def ssh_argv(spec: Spec, argv: Sequence[str]) -> list[str]:
    """The real ssh command line for `ssh ARGV` run inside `ui`/`run`."""
    options, i = _options(argv, _SSH_ARGS)
    if i >= len(argv):
        return [spec.ssh, *options, *argv[i:]]  # no destination (ssh -V, -G ...): nothing to route
    destination, rest = argv[i], list(argv[i + 1 :])
    port: list[str] = []
    if destination.startswith("ssh://"):
        user, hostport = _split_user(destination[len("ssh://") :])
        host, _, port_text = hostport.partition(":")
        port = ["-p", port_text] if port_text else []
    else:
        user, host = _split_user(destination)
    host, is_workstation = _host(spec, host)
    if is_workstation and spec.workstation_port is not None and not port:
        port = ["-p", str(spec.workstation_port)]
    target = f"{user}@{host}" if _keep_user(spec, user) else host
    return [spec.ssh, *options, *_ours(spec, port), target, *rest]


def scp_argv(spec: Spec, argv: Sequence[str]) -> list[str]:
    """The real scp command line for `scp ARGV` run inside `ui`/`run` (remote operands: [user@]host:path)."""
    options, i = _options(argv, _SCP_ARGS)
    operands = []
    for operand in argv[i:]:
        if operand.startswith("scp://") or ":" not in operand or "/" in operand.split(":", 1)[0]:
            operands.append(operand)  # a local path (or a URI, left to scp)
            continue
        where, _, path = operand.partition(":")
        user, host = _split_user(where)
        host, _ = _host(spec, host)
        operands.append(f"{user}@{host}:{path}" if _keep_user(spec, user) else f"{host}:{path}")
    return [spec.scp, *options, *_ours(spec), "--", *operands]


def load_spec(path: Path) -> Spec:
    data = json.loads(path.read_text())
    return Spec(**data)


def main(argv: Sequence[str]) -> int:
    """`python -m ecflow_remote.transport.wrapper ssh|scp SPEC ARGS...`: exec the rewritten command."""
    if len(argv) < 2 or argv[0] not in PROGRAMS:
        print("usage: python -m ecflow_remote.transport.wrapper ssh|scp SPEC [ARGS...]", file=sys.stderr)
        return 2
    try:
        spec = load_spec(Path(argv[1]))
    except (OSError, ValueError, TypeError) as e:
        print(f"ecflow-remote's {argv[0]}: no tunnel spec ({e}); is the tunnel up?", file=sys.stderr)
        return 255
    command = ssh_argv(spec, argv[2:]) if argv[0] == "ssh" else scp_argv(spec, argv[2:])
    env = {k: v for k, v in os.environ.items() if k not in spec.password_variables}
    # Under the socks method the caller may run inside proxychains: ssh must not (its jump connection is ours).
    if "proxychains" in env.get("LD_PRELOAD", ""):
        env.pop("LD_PRELOAD")
    env.pop("PROXYCHAINS_CONF_FILE", None)
    os.execve(command[0], command, env)
    return 255  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
