"""The Centre's daemons: sshd (CA-only), ecflow_server with a running suite, and the perl log server."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from centre import chroots
from centre.network import Host

BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}

# ecFlow needs a valid locale and its own host name per server (it names its log and check-point files after it).
_HOSTNAME_SHIM = 'hostname "$0" && exec "$@"'


def in_host(host: Host, argv: Sequence[str]) -> list[str]:
    """argv run inside `host`: its network namespace, its /etc view, its host name."""
    return [
        "ip",
        "netns",
        "exec",
        host.netns,
        "unshare",
        "--uts",
        "--",
        "/bin/sh",
        "-c",
        _HOSTNAME_SHIM,
        host.name,
        *argv,
    ]


def spawn(
    host: Host, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            in_host(host, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**BASE_ENV, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )


def host_exec(
    host: Host,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        in_host(host, argv),
        capture_output=True,
        text=True,
        env={**BASE_ENV, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"on {host.name}: `{' '.join(argv)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
        )
    return proc


_WAIT_PORT = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close(); break
    except OSError as e:
        if time.monotonic() > deadline: sys.exit(f"{sys.argv[1]}:{sys.argv[2]} not listening: {e}")
        time.sleep(0.02)
"""


def wait_port(host: Host, port: int, timeout: float = 15) -> None:
    host_exec(
        host,
        ["/usr/bin/python3", "-c", _WAIT_PORT, host.address, str(port), str(timeout)],
        timeout=timeout + 5,
    )


# ---------------------------------------------------------------------------------------------------------- sshd

SSHD_CONFIG = """\
# sshd of the simulated Centre's {name}: certificates signed by the Centre's user CA only, like Teleport.
Port 22
ListenAddress 0.0.0.0
HostKey {dir}/host_key
HostCertificate {dir}/host_key-cert.pub
TrustedUserCAKeys {ca}
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowTcpForwarding yes
PermitTTY yes
PrintMotd no
PidFile {dir}/sshd.pid
LogLevel VERBOSE
"""


def write_sshd_config(host: Host, ssh_dir: Path, user_ca_pub: Path, sessions: bool = True) -> Path:
    config = ssh_dir / "sshd_config"
    text = SSHD_CONFIG.format(name=host.name, dir=ssh_dir, ca=user_ca_pub)
    if not sessions:
        # Like a Teleport proxy: forwarding yes, but no shell or command session.
        text += "ForceCommand /bin/false\nPermitTTY no\n"
    config.write_text(text)
    return config


def start_sshd(host: Host, ssh_dir: Path) -> subprocess.Popen[bytes]:
    # The privilege-separation directory that Debian's unit file would create.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    proc = spawn(
        host,
        ["/usr/sbin/sshd", "-D", "-f", str(ssh_dir / "sshd_config"), "-E", str(ssh_dir / "sshd.log")],
        ssh_dir / "sshd.out",
    )
    wait_port(host, 22)
    return proc


# ---------------------------------------------------------------------------------------------------- ecflow

HEAD_H = """\
#!/bin/bash
set -eu
export ECF_PORT=%ECF_PORT% ECF_HOST=%ECF_HOST% ECF_NAME=%ECF_NAME% ECF_PASS=%ECF_PASS% ECF_TRYNO=%ECF_TRYNO%
export ECF_RID=$$
ecflow_client --init=$$
trap 'ecflow_client --abort="exit status $?"; exit 1' ERR
"""
TAIL_H = "ecflow_client --complete\n"

# Each task writes output that names its server and log server, so a test can tell the files apart.
TASKS = {
    "hello": 'echo "hello from %ECF_NAME% on $(hostname), served by %ECF_LOGHOST%:%ECF_LOGPORT%"\n'
    'for i in $(seq 1 20); do echo "line $i of %ECF_NAME%"; done\n',
    "long": 'echo "started %ECF_NAME%"\nsleep 100000\n',
    "fails": 'echo "about to fail"\nfalse\n',
    "later": 'echo "never runs: its family is suspended"\n',
}


def suite_def(suite: str, ecf_home: Path, out: Path, loghost: str, logport: int) -> str:
    return f"""\
suite {suite}
  edit ECF_HOME '{ecf_home}'
  edit ECF_INCLUDE '{ecf_home}/include'
  edit ECF_OUT '{out}'
  edit ECF_LOGHOST '{loghost}'
  edit ECF_LOGPORT '{logport}'
  edit ECF_TRIES '1'
  family f1
    task hello
    task long
    task fails
  endfamily
  family f2
    defstatus suspended
    edit OWNER 'team2'
    task later
  endfamily
endsuite
"""


def write_suite(
    suite: str, ecf_home: Path, out: Path, loghost: str, logport: int, client_options: Sequence[str] = ()
) -> Path:
    """The suite's files; `client_options`: what the jobs' ecflow_client needs to reach their server (--http)."""
    (ecf_home / "include").mkdir(parents=True, exist_ok=True)
    client = " ".join(["ecflow_client", *client_options]) + " "
    (ecf_home / "include" / "head.h").write_text(HEAD_H.replace("ecflow_client ", client))
    (ecf_home / "include" / "tail.h").write_text(TAIL_H.replace("ecflow_client ", client))
    for family, tasks in {"f1": ["hello", "long", "fails"], "f2": ["later"]}.items():
        (ecf_home / suite / family).mkdir(parents=True, exist_ok=True)
        (out / suite / family).mkdir(parents=True, exist_ok=True)
        for task in tasks:
            body = f"%include <head.h>\n{TASKS[task]}%include <tail.h>\n"
            (ecf_home / suite / family / f"{task}.ecf").write_text(body)
    definition = ecf_home / f"{suite}.def"
    definition.write_text(suite_def(suite, ecf_home, out, loghost, logport))
    return definition


def _as(as_user: int | None, argv: list[str]) -> list[str]:
    if as_user is None:
        return argv
    return ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *argv]


def _in(chroot: tuple[Path, Path] | None, argv: list[str]) -> list[str]:
    """argv, or argv inside a chroot: (its root, the Centre directory it must see)."""
    return argv if chroot is None else chroots.in_chroot(chroot[0], chroot[1], argv)


def start_ecflow_server(
    host: Host,
    port: int,
    ecf_home: Path,
    env: Mapping[str, str],
    as_user: int | None = None,
    *,
    chroot: tuple[Path, Path] | None = None,
    options: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    # ecFlow always lets the server's own user in: a white list only bites when the server is not root's.
    argv = _in(chroot, _as(as_user, ["/usr/sbin/ecflow_server", *options]))
    proc = spawn(
        host,
        argv,
        ecf_home / "server.out",
        env={"ECF_HOME": str(ecf_home), "ECF_PORT": str(port), **env},
        cwd=ecf_home,
    )
    wait_port(host, port)
    return proc


def start_tls_front(host: Host, port: int, target: int, ssl_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """An https server's TLS front (tlsfront.py) on the host's address and `port`, before its ecflow_server --http
    on `target`, with the certificate and key in `ssl_dir`."""
    import sys

    argv = [sys.executable, "-m", "centre.tlsfront", host.address, str(port), str(target)]
    argv += [str(ssl_dir / "server.crt"), str(ssl_dir / "server.key")]
    proc = spawn(host, argv, log, env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    wait_port(host, port)
    return proc


def ecflow_client(
    host: Host,
    port: int,
    args: Sequence[str],
    *,
    as_user: int | None = None,
    check: bool = True,
    chroot: tuple[Path, Path] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """ecflow_client on `host` (in `chroot`: that release's own client); as_user: an admin who is on the server's
    white list (the Centre's user1, not the laptop's root)."""
    argv = _in(chroot, _as(as_user, ["ecflow_client", "--host", host.name, "--port", str(port), *args]))
    return host_exec(host, argv, check=check, env=env)


def wait_task_state(
    client: Callable[[Sequence[str]], subprocess.CompletedProcess[str]],
    where: str,
    path: str,
    states: Sequence[str],
    timeout: float = 20,
) -> str:
    """Until `path` is in one of `states`, asked with `client` (an ecflow_client for the server at `where`)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        # The last line: a 5.19 client first says it found no API token file.
        lines = client(["--query", "state", path]).stdout.strip().splitlines()
        state = lines[-1].strip() if lines else ""
        if state in states:
            return state
        time.sleep(0.1)
    raise RuntimeError(f"{where} {path} is {state!r}, expected one of {list(states)} after {timeout}s")


# ------------------------------------------------------------------------------------------------ log server


def start_logserver(host: Host, port: int, logpath: Sequence[Path], workdir: Path) -> subprocess.Popen[bytes]:
    env = {"LOGPORT": str(port), "LOGPATH": ":".join(str(p) for p in logpath)}
    proc = spawn(host, ["/usr/bin/perl", "/usr/sbin/ecflow_logsvr"], workdir / f"{host.name}.log", env=env, cwd=workdir)
    wait_port(host, port)
    return proc


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path
