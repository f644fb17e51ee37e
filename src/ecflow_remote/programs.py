"""`run` and `ui`: the environment, private hosts view and proxychains config that launched programs get."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ecflow_remote.errors import LaunchError
from ecflow_remote.hosts.view import no_view_message, private_view, private_view_available
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.tunnel.state import RunFiles

if TYPE_CHECKING:
    from ecflow_remote.tunnel.handle import Tunnel


def spawn(
    argv: Sequence[str],
    plan: Plan,
    files: RunFiles,
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
    if plan.socks_port is not None and wrap_proxychains and files.proxychains:
        pc = _which("proxychains4")
        argv = [pc, "-q", "-f", files.proxychains, *argv]
    preexec = None
    binds: list[tuple[str, str]] = []
    if files.hosts and files.resolv and not files.system_hosts:  # with the system file's block, the names are there
        if private_view_available():
            binds = [(files.hosts, "/etc/hosts"), (files.resolv, "/etc/resolv.conf")]
        elif plan.by_centre_names:
            raise LaunchError(no_view_message(plan))
        # local: the view only adds log-server names (ECF_LOGHOST) on 127.0.0.1; everything works without it.
    if binds or hide or hostname is not None:

        def preexec() -> None:
            private_view(binds, hide, hostname)

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


def ssh_through_tunnel(tunnel: Tunnel, env: dict[str, str]) -> None:
    """Put the tunnel's ssh and scp (transport/wrapper.py) first on the launched program's PATH: `ssh host` and
    `scp host:file` reach any Centre host through the running tunnel, ecflow_ui's file transfers included."""
    from ecflow_remote.transport import wrapper

    bin_dir = wrapper.install(tunnel.profile, tunnel.rundir.path)
    env["PATH"] = os.pathsep.join([str(bin_dir), *[p for p in env.get("PATH", os.defpath).split(os.pathsep) if p]])


def run_env(plan: Plan, server: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if server is not None:
        e = plan.endpoint(server)
        env["ECF_HOST"], env["ECF_PORT"] = e.local_host, str(e.local_port)
    return env


def run(
    argv: Sequence[str],
    plan: Plan,
    files: RunFiles,
    server: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    tunnel: Tunnel | None = None,
) -> int:
    """Run a command through the tunnel and return its exit status. `extra_env`: more variables; with `tunnel`,
    its ssh and scp come first on the PATH and the profile's password variables are left out."""
    if not argv:
        raise LaunchError("nothing to run: give a command after --, e.g. ecflow-remote run -- ecflow_client --ping")
    env = {**run_env(plan, server), **(extra_env or {})}
    if tunnel is not None:
        env = tunnel.profile.without_password_variables(env)
        ssh_through_tunnel(tunnel, env)
    with contextlib.ExitStack() as stack:
        if server is not None and plan.endpoint(server).protocol == "ssl":
            fetch = tunnel.clients().fetch_certificate if tunnel is not None else None
            env.update(stack.enter_context(tls_env(plan.endpoint(server), fetch)))
        proc = spawn(argv, plan, files, env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.wait()
            return 130


@contextlib.contextmanager
def tls_env(endpoint: Endpoint, fetch: Callable[[list[Path]], Path | None] | None = None) -> Iterator[dict[str, str]]:
    """ECF_SSL and ECF_SSL_DIR (ecflow_client 5.13 and later) for a TLS server reached at a local endpoint: the
    client looks for server.crt, then for <ECF_HOST>.<ECF_PORT>.crt, so a private directory holds the server's
    certificate under both names while the command runs."""
    from ecflow_remote.clients.ecflow import certs

    found = certs.find(endpoint.host, endpoint.port)
    if found is None and fetch is not None:
        found = fetch(certs.candidates(endpoint.host, endpoint.port))
    if found is None:
        raise LaunchError(certs.missing_words(endpoint.host, endpoint.port, f"ecFlow server {endpoint.name}"))
    with tempfile.TemporaryDirectory(prefix="ecflow-remote-ssl-") as d:
        for name in ("server.crt", f"{endpoint.local_host}.{endpoint.local_port}.crt"):
            shutil.copyfile(found, Path(d) / name)
        # ecFlow appends the file name to ECF_SSL_DIR as it is: the trailing slash is needed.
        yield {"ECF_SSL": "1", "ECF_SSL_DIR": f"{d}/"}


def local_hint(plan: Plan, argv: Sequence[str]) -> str | None:
    """With the local method a program naming a server by its Centre host reaches nothing (no names are mapped: a
    moved port would send it to whatever listens on the original one). Where it is instead, for a failed run."""
    from ecflow_remote.transport.wrapper import PROGRAMS

    # The tunnel's own ssh and scp (first on the PATH) reach Centre hosts by name in every method.
    if plan.by_centre_names or (argv and Path(argv[0]).name in PROGRAMS):
        return None
    words = {w.rpartition("=")[2] for w in argv}  # --host machine1, --host=machine1, ECF_HOST=machine1
    on_host = [e for e in plan.endpoints if e.kind == "server" and e.forwarded and e.host in words]
    # Two servers of one host (3142 and 3144): the one whose port the command names, else each of them.
    named = [e for e in on_host if str(e.port) in words] or on_host
    if not named:
        return None
    where = "; ".join(
        f"server {e.name} ({e.host}:{e.port}) is at {e.local_host} port {e.local_port} (--host {e.local_host} "
        f"--port {e.local_port}, or `ecflow-remote run --server {e.name} -- ...`, which sets ECF_HOST/ECF_PORT)"
        for e in named
    )
    return (
        f"with the local method {named[0].host} is not a name here: {where}; the hosts method keeps the Centre's "
        "names and ports"
    )


def default_server_hint(plan: Plan, argv: Sequence[str], server: str | None, environ: Mapping[str, str]) -> str | None:
    """ecflow_client given no server asks localhost:3141, which the tunnel never is: which servers there are, for a
    failed run."""
    if server is not None or "ECF_HOST" in environ or not any(Path(w).name == "ecflow_client" for w in argv):
        return None
    if any(w.startswith("--host") or "ECF_HOST=" in w for w in argv):
        return None
    names = [e.name for e in plan.endpoints if e.kind == "server"]
    return (
        "ecflow_client without --host asks localhost:3141 (no ECF_HOST); name a server: `ecflow-remote run --server "
        f"NAME -- ecflow_client ...` (servers: {', '.join(names) or 'none'})"
    )


def run_through(tunnel: Tunnel, argv: Sequence[str], server: str | None = None) -> int:
    """`ecflow-remote run [--server NAME] -- CMD`: run a command through a running tunnel; its exit status.

    The program is given no identity (no ECF_USER, no password file): it sends the login name, and the relay on each
    server's endpoint presents that server's own (access/relay.py), so one program reaches every server."""
    if server is not None:
        tunnel.profile.server(server)  # a clear error for an unknown name
    plan = tunnel.plan()  # a clear error when no tunnel runs
    files = tunnel.files()
    return run(argv, plan, files, server, None, tunnel)
