"""`run` and `ui`: the environment, private hosts view and proxychains config that launched programs get."""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ecflow_remote.errors import LaunchError
from ecflow_remote.plan import Plan

if TYPE_CHECKING:
    from ecflow_remote.tunnel.supervisor import Tunnel

MARK = "# ecflow-remote"


# ---------------------------------------------------------------------------------------------- files


def hosts_text(plan: Plan, base: str | None = None) -> str:
    """The machine's own hosts file plus the Centre's names on loopback: what launched programs see."""
    if base is None:
        try:
            base = Path("/etc/hosts").read_text()
        except OSError:
            base = "127.0.0.1\tlocalhost\n"
    lines = [f"{addr}\t{name}" for name, addr in plan.hosts.items()]
    return base.rstrip("\n") + f"\n{MARK} ({plan.method} method)\n" + "\n".join(lines) + "\n"


def proxychains_text(plan: Plan) -> str:
    assert plan.socks_port is not None
    # The SOCKS front asks for the tunnel's user and password (this file is 0600, in a 0700 directory).
    auth = f" {plan.proxy_auth[0]} {plan.proxy_auth[1]}" if plan.proxy_auth else ""
    return f"""\
{MARK}: private proxychains config for the socks method (never the global one)
strict_chain
quiet_mode
proxy_dns
remote_dns_subnet 224
tcp_read_time_out 15000
tcp_connect_time_out 8000
# Loopback goes direct: the Centre's ecFlow servers are forwarded there (proxychains cannot carry ecFlow's
# Boost.Asio sockets on Linux), and local programs stay local.
localnet 127.0.0.0/255.0.0.0
[ProxyList]
socks5 127.0.0.1 {plan.socks_port}{auth}
"""


def write_support_files(plan: Plan, rundir: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    if plan.hosts:
        hosts = rundir / "hosts"
        hosts.write_text(hosts_text(plan))
        resolv = rundir / "resolv.conf"
        # The program's resolver stays the one this process sees (under the test suite: 127.0.0.1 only).
        try:
            resolv.write_text(Path("/etc/resolv.conf").read_text())
        except OSError:
            resolv.write_text("nameserver 127.0.0.1\n")
        files["hosts"] = str(hosts)
        files["resolv"] = str(resolv)
    if plan.socks_port is not None:
        from ecflow_remote.access.socks import write_private

        conf = rundir / "proxychains.conf"
        write_private(conf, proxychains_text(plan))
        files["proxychains"] = str(conf)
    return files


# ------------------------------------------------------------------------------------ private hosts view

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWUSER = 0x10000000
_MS_REC, _MS_PRIVATE, _MS_BIND = 0x4000, 1 << 18, 4096


def _private_view(binds: Sequence[tuple[str, str]], hide: Sequence[str] = (), hostname: str | None = None) -> None:
    """In the child, before exec: a mount namespace of its own with `binds` (file over file) mounted, an
    empty tmpfs over each `hide` directory and, if given, a host name of its own (tests tell its requests apart).

    Root gets a plain mount namespace; anyone else a user namespace that maps their own uid to itself, so the
    program still runs as (and its ecFlow requests still name) the same user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS if uid == 0 else _CLONE_NEWNS | _CLONE_NEWUSER
    if hostname is not None:
        flags |= _CLONE_NEWUTS
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    if uid != 0:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    for source, target in binds:
        if libc.mount(source.encode(), target.encode(), None, _MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), f"bind mount {target}")
    for target in hide:
        if libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, b"mode=0755") != 0:
            raise OSError(ctypes.get_errno(), f"tmpfs over {target}")
    if hostname is not None and libc.sethostname(hostname.encode(), len(hostname.encode())) != 0:
        raise OSError(ctypes.get_errno(), "sethostname")


def private_view_available() -> bool:
    """Whether launched programs can get a private hosts view here: Linux, and unshare allowed (probed once).

    ECFLOW_REMOTE_PRIVATE_VIEW=0 pretends it is not (for tests of the system hosts file fallback only)."""
    forced = os.environ.get("ECFLOW_REMOTE_PRIVATE_VIEW")
    if forced is not None:
        return forced != "0"
    return _probe_private_view()


@functools.cache
def _probe_private_view() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import shutil

    true = shutil.which("true") or "/bin/true"
    try:
        done = subprocess.run(
            [true],
            preexec_fn=lambda: _private_view(()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def no_view_message(plan: Plan) -> str:
    """Why run/ui cannot map the Centre's names here, and the two ways out."""
    return (
        f"the {plan.method} method maps the Centre's names ({', '.join(plan.hosts)}) for launched programs in a "
        "private hosts view, which needs Linux mount namespaces (not available here). Either use the local "
        "method (ecflow-remote down; ecflow-remote up --method local), or let ecflow-remote add a marked block "
        "to /etc/hosts while the tunnel is up: set system_hosts = true in the profile's [gateway] and run "
        "`ecflow-remote up` again (the file is root's: it prints the one sudo command if it cannot write it)"
    )


def spawn(
    argv: Sequence[str],
    plan: Plan,
    files: Mapping[str, str],
    env: Mapping[str, str],
    wrap_proxychains: bool = True,
    hide: Sequence[str] = (),
    hostname: str | None = None,
    **popen: object,
) -> subprocess.Popen[bytes]:
    """Start `argv` seeing the Centre's names (hosts view) and, for socks, through proxychains.

    `hide` (directories to cover with an empty tmpfs) and `hostname` are for tests (Linux only).
    """
    argv = list(argv)
    env = dict(env)
    if plan.socks_port is not None and wrap_proxychains and "proxychains" in files:
        pc = _which("proxychains4")
        argv = [pc, "-q", "-f", files["proxychains"], *argv]
    preexec = None
    binds: list[tuple[str, str]] = []
    if "hosts" in files and "system_hosts" not in files:  # with the system file's block, the names are there
        if private_view_available():
            binds = [(files["hosts"], "/etc/hosts"), (files["resolv"], "/etc/resolv.conf")]
        elif plan.method != "local":
            raise LaunchError(no_view_message(plan))
        # local: the view only adds log-server names (ECF_LOGHOST) on 127.0.0.1; everything works without it.
    if "custom_passwd" in files:
        # Custom users' passwords for the tunnel's local endpoints; only consulted for a custom user (ECF_USER,
        # or a user in ecflow_ui's server list), so harmless for everyone else.
        env.setdefault("ECF_CUSTOM_PASSWD", files["custom_passwd"])
    if binds or hide or hostname is not None:

        def preexec() -> None:
            _private_view(binds, hide, hostname)

    try:
        return subprocess.Popen(argv, env=env, preexec_fn=preexec, **popen)  # type: ignore[call-overload,no-any-return]
    except subprocess.SubprocessError as e:
        raise LaunchError(
            f"could not start {argv[0]}: the private hosts view was refused ({e}); "
            "unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone)"
        ) from e
    except FileNotFoundError:
        raise LaunchError(f"{argv[0]}: command not found") from None


def _which(name: str) -> str:
    import shutil

    path = shutil.which(name)
    if not path:
        raise LaunchError(
            f"{name} is not installed (Debian: apt install proxychains4; macOS: brew install "
            "proxychains-ng); the socks method needs it for programs that do not speak SOCKS"
        )
    return path


def run_env(plan: Plan, server: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if server is not None:
        e = plan.endpoint(server)
        env["ECF_HOST"], env["ECF_PORT"] = e.local_host, str(e.local_port)
    return env


def run(
    argv: Sequence[str],
    plan: Plan,
    files: Mapping[str, str],
    server: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> int:
    """Run a command through the tunnel and return its exit status. `extra_env`: ECF_USER and the like."""
    if not argv:
        raise LaunchError("nothing to run: give a command after --, e.g. ecflow-remote run -- ecflow_client --ping")
    proc = spawn(argv, plan, files, {**run_env(plan, server), **(extra_env or {})})
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        return 130


def run_through(tunnel: Tunnel, argv: Sequence[str], server: str | None = None) -> int:
    """`ecflow-remote run [--server NAME] -- CMD`: run a command through a running tunnel; its exit status."""
    from ecflow_remote.access import identity

    if server is not None:
        tunnel.profile.server(server)  # a clear error for an unknown name
    plan = tunnel.plan()  # a clear error when no tunnel runs
    files = (tunnel.state() or {}).get("files", {})
    return run(argv, plan, files, server, identity.launch_env(tunnel.profile, files, server))
