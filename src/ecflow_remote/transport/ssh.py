"""OpenSSH command lines for a profile and a plan, and ssh's own errors in plain words."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ecflow_remote.errors import SshMissing
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile, SshTarget

# A pty-backed session on each leg: OpenSSH turns Nagle off (TCP_NODELAY) only for connections that carry an
# interactive session, and without it every small forwarded reply waits ~40 ms for a delayed ACK.
HOLD_COMMAND = "exec sleep 2147483647"
# ssh gives up after (CountMax + 1) unanswered intervals: 3 s and 3 notice a dead link in about 12 s (5 and 3
# measured 19-20 s), for one small packet every 3 s of silence.
KEEPALIVE = ["-o", "ServerAliveInterval=3", "-o", "ServerAliveCountMax=3"]
# A check's ssh (`doctor`) gives up on a hop sooner than the tunnel's (10 s), so one dead hop fails within the
# check's own limit (doctor.SSH_TIMEOUT, 20 s) with ssh's words rather than a kill.
PROBE_CONNECT_TIMEOUT = 8


def ssh_environ(profile: Profile) -> dict[str, str]:
    """The environment of every ssh ecflow-remote starts: this process's, without the profile's password
    variables, which ssh would hand to ProxyCommand, LocalCommand and Match exec, and SendEnv to the far side. From
    the profile, not from what was read: the jump host's ssh starts before any password is (tunnel/prestart.py)."""
    return profile.without_password_variables(os.environ)


def ssh_binary() -> str:
    path = shutil.which("ssh")
    if path is None:
        raise SshMissing("ssh (the OpenSSH client) is not on PATH: install it (Debian: apt install openssh-client)")
    return path


@dataclass(frozen=True)
class Legs:
    """The ssh processes of one tunnel: an optional master to the jump host, and the main forwarding leg."""

    jump_master: list[str] | None
    main: list[str]


def _with_config(profile: Profile) -> list[str]:
    """ssh, and the profile's ssh config file when it names one: the start of every command line here."""
    argv = [ssh_binary()]
    if profile.gateway.ssh_config:
        argv += ["-F", str(profile.gateway.ssh_config)]
    return argv


def _common(profile: Profile, *, master: bool = False) -> list[str]:
    argv = _with_config(profile)
    argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *KEEPALIVE]
    # The all-day connection carries nothing of the user's own: no agent or X11 forwarding, no LocalCommand.
    argv += ["-a", "-x", "-o", "PermitLocalCommand=no"]
    if not master:
        # Never ride on the user's own ControlMaster: it would own (and steal) our forwards.
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    return argv


def destination(target: SshTarget) -> str:
    # Validated by the profile (never starts with "-"); the URI form is the only one that carries a port.
    return target.uri() if target.port is not None else str(target)


def legs(
    profile: Profile,
    plan: Plan,
    control_dir: Path,
    *,
    forward_sockets: Mapping[str, Path] | None = None,
    socks_socket: Path | None = None,
    jump_session: bool = True,
    main_session: bool = True,
) -> Legs:
    """The ssh command lines. Each leg holds a pty session (see HOLD_COMMAND) unless told its hop refuses one.

    Every local listener is the supervisor's (kept across reconnects; no other account can take a port while ssh
    is away), so ssh itself never listens on TCP. The main leg is a ControlMaster (control_dir/main.sock) either
    way: endpoints that join later get their forwards through it (control_forwards), and the far-side agent runs as
    its second session (agent_argv). Either way ssh forwards each endpoint to the unix socket
    `forward_sockets[name]` and, for the socks method, runs its SOCKS server on `socks_socket` — both in the 0700
    run directory, sockets 0600 — behind the supervisor's listeners: the plain transport, the channels that serve
    while the agent starts, and the ones a fast link prefers (pipe.Upstreams.route)."""
    forward_sockets = forward_sockets or {}
    gw = profile.gateway
    main = [*_common(profile, master=True)]
    master = jump_master(profile, control_dir, session=jump_session)
    if master is not None:
        sock, target = jump_socket(control_dir), destination(gw.jump[0])
        config = f"-F {shlex.quote(str(gw.ssh_config))} " if gw.ssh_config else ""
        # Through the master's pty-backed connection; if the master is gone ssh simply connects on its own.
        proxy = f"{shlex.quote(ssh_binary())} {config}-o BatchMode=yes -S {shlex.quote(str(sock))} -W %h:%p {target}"
        main += ["-o", f"ProxyCommand={proxy}"]
    elif gw.jump:
        main += ["-J", ",".join(str(j) for j in gw.jump)]
    main += ["-M", "-S", str(main_socket(control_dir)), "-o", "ControlPersist=no"]
    main += ["-o", "StreamLocalBindUnlink=yes"]  # a killed ssh leaves sockets; also for control_forwards' ones
    main += ["-o", "ExitOnForwardFailure=yes"]
    main += _local_forwards(plan, forward_sockets)
    if plan.socks_port is not None:
        if socks_socket is None:
            raise ValueError("the socks method needs the path of ssh's SOCKS socket")
        main += ["-D", str(socks_socket.absolute())]
    main += ["-tt", destination(gw.host), HOLD_COMMAND] if main_session else ["-N", destination(gw.host)]
    return Legs(master, main)


def _local_forwards(plan: Plan, forward_sockets: Mapping[str, Path]) -> list[str]:
    """-L options, one per socket: two endpoints at one host:port (a log server at an ecFlow server's) share one
    (forwards.sockets_for), and a second -L to it would unlink the first's socket (StreamLocalBindUnlink) and leave
    its listener orphaned in ssh."""
    specs = dict.fromkeys(f"{forward_sockets[e.name].absolute()}:{e.host}:{e.port}" for e in plan.forwards)
    return [arg for spec in specs for arg in ("-L", spec)]


def compressed(argv: list[str]) -> list[str]:
    """A leg's argv with ssh -C: the main leg carries every forward across the link (decisions.compress_plain)."""
    return [argv[0], "-C", *argv[1:]]


def jump_master(profile: Profile, control_dir: Path, *, session: bool = True) -> list[str] | None:
    """The jump master's argv (control_dir/jump.sock), which needs nothing but the profile: None without exactly one
    jump host, or when that hop gives no session (ssh -J then reaches the workstation on its own)."""
    if len(profile.gateway.jump) != 1 or not session:
        return None
    target = destination(profile.gateway.jump[0])
    master = ["-M", "-S", str(jump_socket(control_dir)), "-o", "ControlPersist=no", "-tt", target, HOLD_COMMAND]
    return [*_common(profile, master=True), *master]


def jump_socket(control_dir: Path) -> Path:
    return control_dir / "jump.sock"


def main_socket(control_dir: Path) -> Path:
    """The main leg's control socket (the agent's session and the forwards added later ride on it)."""
    return control_dir / "main.sock"


def control_forwards(
    profile: Profile, plan: Plan, control_dir: Path, forward_sockets: Mapping[str, Path], socks_socket: Path | None
) -> list[str]:
    """ssh argv adding plain forwards (to private unix sockets) to the running main leg through its control
    socket: beside the agent, for when the link is fast (pipe.Upstreams.route), and for endpoints that join a
    running tunnel (either transport)."""
    argv = [ssh_binary(), *(["-F", str(profile.gateway.ssh_config)] if profile.gateway.ssh_config else [])]
    argv += ["-o", "BatchMode=yes", "-S", str(main_socket(control_dir)), "-O", "forward"]
    argv += _local_forwards(plan, forward_sockets)
    if socks_socket is not None:
        argv += ["-D", str(socks_socket.absolute())]
    return [*argv, destination(profile.gateway.host)]


def agent_argv(profile: Profile, control_dir: Path) -> list[str]:
    """ssh argv, up to the remote command, for the agent's session on the main leg's connection."""
    # Here, not at the top: the agent's package loads asyncio, which the supervisor's head start must not wait for.
    from ecflow_remote.transport.agent.bootstrap import control_session_argv

    options = ["-F", str(profile.gateway.ssh_config)] if profile.gateway.ssh_config else []
    options += ["-o", "BatchMode=yes"]
    return control_session_argv(ssh_binary(), main_socket(control_dir), destination(profile.gateway.host), options)


def first_hop(profile: Profile) -> SshTarget:
    """The tunnel's first hop: the first jump host, else the workstation (its certificate check comes first)."""
    return profile.gateway.jump[0] if profile.gateway.jump else profile.gateway.host


def parse_ssh_g(text: str) -> dict[str, list[str]]:
    """`ssh -G` output: lower-case keyword -> every value (identityfile and certificatefile repeat)."""
    result: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            result.setdefault(key.lower(), []).append(value.strip())
    return result


def probe(profile: Profile) -> list[str]:
    """ssh and its options (no destination) for one check of a link (`doctor`): the profile's config, batch mode,
    never the user's own ControlMaster, and a ConnectTimeout of PROBE_CONNECT_TIMEOUT."""
    argv = _with_config(profile)
    timeout = f"ConnectTimeout={PROBE_CONNECT_TIMEOUT}"
    return [*argv, "-o", "BatchMode=yes", "-o", timeout, "-o", "ControlMaster=no", "-o", "ControlPath=none"]


def via_tunnel(profile: Profile, control_dir: Path) -> list[str]:
    """ssh and its options (no destination) reaching any Centre host as the tunnel does: the profile's config
    (its user, certificate and known hosts), batch mode, never the user's own ControlMaster, and with one jump host
    through the running tunnel's jump master (`jump.sock` in `control_dir`), so no new login to the jump host.

    For `ui`/`run` (their ssh wrapper, ecflow_ui's file transfers) and for reading files on the workstation."""
    gw = profile.gateway
    argv = _with_config(profile)
    argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlMaster=no", "-o", "ControlPath=none"]
    if len(gw.jump) == 1:
        config = f"-F {shlex.quote(str(gw.ssh_config))} " if gw.ssh_config else ""
        sock = shlex.quote(str(jump_socket(control_dir).absolute()))
        # With the master gone (a reconnect under way, or a jump host without sessions), ssh -S connects itself.
        hop = f"{shlex.quote(ssh_binary())} {config}-o BatchMode=yes -S {sock} -W %h:%p {destination(gw.jump[0])}"
        argv += ["-o", f"ProxyCommand={hop}"]
    elif gw.jump:
        argv += ["-J", ",".join(str(j) for j in gw.jump)]
    return argv


def settings(profile: Profile, target: SshTarget | None = None) -> dict[str, list[str]]:
    """What ssh would use for `target` (default: the first hop), from `ssh -G` with the profile's config; {} when
    ssh cannot say (not installed, a config it rejects)."""
    binary = shutil.which("ssh")
    if binary is None:
        return {}
    hop = target or first_hop(profile)
    argv = [binary, "-G"]
    if profile.gateway.ssh_config:
        argv += ["-F", str(profile.gateway.ssh_config)]
    if hop.user:
        argv += ["-l", hop.user]
    if hop.port is not None:
        argv += ["-p", str(hop.port)]
    try:
        done = subprocess.run(
            [*argv, "--", hop.host], capture_output=True, text=True, timeout=5, env=ssh_environ(profile)
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_ssh_g(done.stdout) if done.returncode == 0 else {}


_FORWARD_KEYS = {"localforward": "LocalForward", "remoteforward": "RemoteForward", "dynamicforward": "DynamicForward"}


def riding_forwards(profile: Profile) -> list[str]:
    """Warnings for forwards the user's own ssh config adds to a hop of the tunnel: they would ride along on its
    all-day connection (ssh cannot clear them without clearing the tunnel's own: ClearAllForwardings)."""
    hops = [*profile.gateway.jump, profile.gateway.host]
    out = []
    for hop in hops:
        found = [f"{_FORWARD_KEYS[k]} {v}" for k in _FORWARD_KEYS for v in settings(profile, hop).get(k, [])]
        if found:
            out.append(
                f"your ssh config adds {', '.join(found)} to {hop}: it rides along on the tunnel's connection all "
                "day; move it under a Host entry the tunnel does not use, or set ssh_config in the profile to a file "
                "without it"
            )
    return out


def first_hop_address(profile: Profile) -> tuple[str, int] | None:
    """Where the tunnel's first TCP connection goes, as `ssh -G` reads the user's config; None when ssh gets there
    through a proxy of its own (nothing for us to probe) or cannot say."""
    opts = settings(profile)
    if not opts or opts.get("proxycommand", ["none"])[0] != "none" or opts.get("proxyjump", ["none"])[0] != "none":
        return None
    return _address(opts)


def workstation_address(profile: Profile) -> tuple[str, int] | None:
    """The workstation's sshd as the jump host reaches it (`ssh -G`: its HostName and Port); None if ssh cannot say."""
    return _address(settings(profile, profile.gateway.host))


def _address(opts: dict[str, list[str]]) -> tuple[str, int] | None:
    try:
        return opts["hostname"][0], int(opts.get("port", ["22"])[0])
    except (KeyError, IndexError, ValueError):
        return None


# ssh's messages, most specific first: what they mean for a user of ecflow-remote, and what to do. "{line}" is ssh's
# own line, kept where it says more than any paraphrase (a config file's line number, the jump host's refusal).
_EXPLANATIONS: list[tuple[str, str, str | None]] = [
    (
        r"^[^\n]*line \d+: [^\n]*$",
        "ssh rejects its configuration ({line})",
        "correct that line (in the file gateway.ssh_config names, else ~/.ssh/config)",
    ),
    (
        r"(\S+): terminating, \d+ bad configuration options",
        "ssh rejects its configuration file {0}",
        "fix it (run `ssh -G -F {0} HOST` to see where)",
    ),
    (
        r"Can't open user config file (\S+): ([^\n]+)",
        "ssh cannot read its configuration file {0} ({1})",
        "fix gateway.ssh_config in the profile, or the file's permissions",
    ),
    (
        r"([^\s@]+)@(\S+): Permission denied \(([^)]*)\)",
        "{1} refused the login as user {0} (Permission denied ({2}))",
        "`ecflow-remote doctor` tells whether the certificate or the user name is wrong",
    ),
    (
        r"Permission denied \(([^)]*)\)",
        "the gateway refused the login (Permission denied ({0}))",
        "`ecflow-remote doctor` tells whether the certificate or the user name is wrong",
    ),
    (
        r"Certificate invalid: expired|certificate .*expired",
        "your SSH certificate has expired",
        "renew it (`ecflow-remote login`, or `tsh login`)",
    ),
    (
        r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED",
        "the host key of the gateway is not trusted (known_hosts)",
        "connect once by hand with ssh to check it",
    ),
    (
        r"Could not resolve hostname ([^\s:]+)",
        "cannot resolve {0}",
        "check the host name in the profile and your network",
    ),
    (
        r"connect to (?:host )?(\S+) port (\d+): Connection refused",
        "{0} refused the SSH connection on port {1}",
        "is sshd running there, on that port? Check the host and port in the profile",
    ),
    (
        r"connect to (?:host )?(\S+) port \d+: (?:Connection timed out|No route to host|Network is unreachable)",
        "{0} cannot be reached",
        "no network, VPN, or the host is down",
    ),
    (
        r"Connection timed out during banner exchange|Connection timed out",
        "the SSH connection timed out",
        "the network is down or the gateway is not answering",
    ),
    (
        # The jump host's -W hop to the workstation failed (-L channel failures never end ssh, so this is it).
        r"open failed: connect failed: ([^\n]+)\n(?:.*\n)*?stdio forwarding failed",
        "the jump host could not reach the workstation's sshd (ssh: {0}; stdio forwarding failed)",
        "is the workstation up, with sshd running? Check gateway.host",
    ),
    (
        # The same through the private jump master (ssh -S ... -W): the master's refusal, in ssh's words.
        r"Stdio forwarding request failed: ([^\n]+)",
        "the jump host could not open a connection to the workstation's sshd ({line})",
        "is the workstation up, with sshd running? Check gateway.host",
    ),
    (
        r"channel \d+: open failed: connect failed: Name or service not known|open failed: .*(\S+)",
        "the workstation could not reach a Centre host named in the profile",
        None,
    ),
    (
        r"(?:bind|cannot listen to port|Address already in use).*?(\d+)?",
        "a local port of the tunnel is already in use",
        "see `ecflow-remote status`, or stop the other program",
    ),
    (r"Timeout, server (\S+) not responding", "the link to {0} died (no answer to keepalives)", "reconnecting"),
    (r"stdio forwarding failed", "the jump host could not open the way to the workstation ({line})", None),
    (
        r"kex_exchange_identification: ([^\n]+)",
        "the SSH server ended the connection before the handshake ({line})",
        "is sshd running there, and does it let you in? `ecflow-remote doctor` finds the broken link",
    ),
    (r"Connection (?:closed|reset) by (\S+)", "{0} closed the connection ({line})", None),
]


def explain_parts(stderr: str) -> tuple[str, str | None]:
    """What ssh's messages mean, and what to do (None when nothing better than ssh's own words is known)."""
    for pattern, what, todo in _EXPLANATIONS:
        m = re.search(pattern, stderr, re.IGNORECASE | re.MULTILINE)
        if m:
            start = stderr.rfind("\n", 0, m.start()) + 1
            end = stderr.find("\n", m.start())
            line = stderr[start : end if end >= 0 else len(stderr)].strip()
            groups = [g or "" for g in m.groups()]
            return what.format(*groups, line=line), todo.format(*groups) if todo else None
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("Warning", "debug"))]
    return (lines[-1] if lines else "ssh exited without a message"), None


def explain(stderr: str) -> str:
    """One line, in plain words, for what ssh printed before it exited."""
    what, todo = explain_parts(stderr)
    return f"{what}: {todo}" if todo else what


def is_auth_failure(stderr: str) -> bool:
    """The server refused the login (not ssh's own "Permission denied" on a file: that is a local problem)."""
    return bool(
        re.search(r"Permission denied \(|Permission denied, please|Certificate invalid|Too many authentication", stderr)
    )


# ssh's own identity files, listed by `ssh -G` when the config names none: a missing one is skipped in silence.
DEFAULT_IDENTITIES = frozenset(
    f"~/.ssh/{name}"
    for name in ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa")
)
# What ssh says of a key file it could not load (its words, then what they mean for the user).
_LOAD_KEY = re.compile(r'^Load key "([^"\n]+)": ([^\n]+)$', re.MULTILINE)
_LOAD_WORDS = {
    "error in libcrypto": "is not a private key ssh can read (a .pub or -cert.pub file, or a damaged key?)",
    "bad permissions": "can be read by others, so ssh ignores it",
    "incorrect passphrase supplied to decrypt private key": "needs a passphrase, which the tunnel cannot type",
}


@dataclass(frozen=True)
class KeyProblem:
    """A key or certificate file the ssh config names that ssh could not use: its option, path and why."""

    option: str  # "IdentityFile" or "CertificateFile"
    path: str
    why: str

    @property
    def fix(self) -> str:
        if self.why.startswith("can be read by others"):
            return f"chmod 600 {self.path}"
        what = "your private key" if self.option == "IdentityFile" else "your certificate"
        there = ", or put the file there" if self.why == "does not exist" else ""
        return f"point {self.option} at {what}{there}"


def key_problems(settings: Mapping[str, list[str]], stderr: str = "") -> list[KeyProblem]:
    """The key and certificate files ssh resolved (`ssh -G` settings) that it cannot use: missing or unreadable,
    or (ssh's log) not loadable. ssh's defaults, when the config names no IdentityFile, may be missing."""
    certificates = settings.get("certificatefile", [])
    identities = settings.get("identityfile", [])
    if set(identities) <= DEFAULT_IDENTITIES:
        identities = []
    problems: list[KeyProblem] = []
    for option, paths in (("IdentityFile", identities), ("CertificateFile", certificates)):
        for raw in paths:
            why = _unusable(Path(os.path.expanduser(raw)))
            if why is not None and "%" not in raw:  # a %-token path is ssh's to expand, not ours to judge
                problems.append(KeyProblem(option, os.path.expanduser(raw), why))
    certificate_paths = {os.path.expanduser(c) for c in certificates}
    for m in _LOAD_KEY.finditer(stderr):
        path, said = m.group(1), m.group(2).strip()
        # ssh tries a certificate as a private key once the key itself failed: a consequence, not a cause.
        if path in certificate_paths or any(p.path == path for p in problems):
            continue
        problems.append(KeyProblem("IdentityFile", path, _LOAD_WORDS.get(said, f"could not be loaded ({said})")))
    return problems


def _unusable(path: Path) -> str | None:
    try:
        if path.is_dir():
            return "is a directory"
        if not path.exists():
            return "does not exist"
    except OSError as e:
        return f"cannot be reached ({e.strerror})"
    return None if os.access(path, os.R_OK) else "cannot be read (permission denied)"
