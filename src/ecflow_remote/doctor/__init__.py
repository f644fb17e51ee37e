"""The step-by-step diagnosis: walk the chain laptop → jump → workstation → servers, stop at the first broken link.

Here the walk and its ssh links; report.py the steps as data; services.py the servers and log servers behind the
workstation. A failed step ends the walk (Walk.fail raises): each check says so with if/else or a return, so the
way on is visible without knowing that."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecflow_remote.access import certs
from ecflow_remote.clients.connect import accepts
from ecflow_remote.doctor import services
from ecflow_remote.doctor.report import Report, Step, Stop, Walk
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile, SshTarget
from ecflow_remote.tunnel.state import TunnelState
from ecflow_remote.unix import die_with_parent

__all__ = ["Report", "Step", "diagnose"]

SSH_TIMEOUT = 20.0
# A check's ssh: no terminal to ask on, its words kept for the report, and never longer than SSH_TIMEOUT.
_CHECK_RUN: dict[str, Any] = {"stdin": subprocess.DEVNULL, "capture_output": True, "text": True, "timeout": SSH_TIMEOUT}


def diagnose(profile_path: Path | None = None, timeout: float = 8.0) -> Report:
    """Check every link in order; the report ends at the first broken one (its `fix` says what to do)."""
    walk = Walk()
    with contextlib.suppress(Stop):
        _walk(walk, profile_path, timeout)
    return walk.report


def _walk(w: Walk, profile_path: Path | None, timeout: float) -> None:
    ssh = shutil.which("ssh")
    if ssh is None:
        w.fail("ssh", "no OpenSSH client on PATH", "install it (Debian: apt install openssh-client)")
    else:
        version = subprocess.run([ssh, "-V"], capture_output=True, text=True).stderr.strip()
        w.ok("ssh", f"{ssh} ({version})")

    profile = _profile(w, profile_path)
    state = _running(profile)
    method = state.method if state is not None else None
    running = f"; a tunnel runs ({method} method)" if method else ""
    w.ok(
        "profile",
        f"{profile.path}: {len(profile.servers)} server(s), {len(profile.logservers)} log server(s){running}",
    )
    _ssh_config(w, profile)

    cert = certs.find(profile)
    if cert is None:
        w.warn(
            "certificate",
            "no SSH certificate found (ssh -G's CertificateFile/IdentityFile, the agent, tsh)",
            "if the gateway needs one: " + certs.renew_hint(profile),
        )
    elif certs.problem(profile, cert):
        w.fail("certificate", certs.summary(profile, cert, hint=False), certs.renew_hint(profile))
    elif certs.warning(profile, cert):
        w.warn("certificate", certs.summary(profile, cert), certs.renew_hint(profile))
    else:
        w.ok("certificate", certs.summary(profile, cert))

    gw = profile.gateway
    for i, hop in enumerate(gw.jump):
        _ssh_hop(w, profile, list(gw.jump[:i]), hop, f"jump {hop.host}" if len(gw.jump) > 1 else "jump")
    _ssh_hop(w, profile, list(gw.jump), gw.host, "workstation")

    tunnel = state.plan if state is not None and state.state == "up" else None
    with _probe(w, profile) as (proxy, proxy_auth):
        asyncio.run(services.check(w, profile, proxy, proxy_auth, timeout, tunnel))

    if (method or gw.method) == "socks":
        pc = shutil.which("proxychains4")
        if pc is None:
            w.fail(
                "proxychains",
                "proxychains4 is not installed; the socks method needs it for programs that do not speak SOCKS",
                'Debian: apt install proxychains4; macOS: brew install proxychains-ng (or use method = "local")',
            )
        else:
            w.ok("proxychains", pc)

    exe = shutil.which("ecflow_ui.x") or shutil.which("ecflow_ui")
    if exe is None:
        w.warn("ecflow_ui", "not installed: `ecflow-remote ui` needs it", "Debian: apt install ecflow-client")
    else:
        w.ok("ecflow_ui", f"{exe} {_ui_version(exe)}")


def _profile(w: Walk, path: Path | None) -> Profile:
    """The profile; one that cannot be loaded ends the walk there."""
    try:
        return load_profile(path)
    except EcflowRemoteError as e:
        w.fail("profile", str(e), "edit the profile as the line above says (or write a new one: ecflow-remote init)")


# ------------------------------------------------------------------------------------------------ ssh links


def _running(profile: Profile) -> TunnelState | None:
    """The state of the tunnel running for this profile (`up --method` may differ from the profile's), if any."""
    from ecflow_remote.tunnel.rundir import RunDir

    try:
        rundir = RunDir.for_profile(profile.path)
        return rundir.read_state() if rundir.is_locked() else None
    except (EcflowRemoteError, OSError):
        return None  # no usable run directory: then no tunnel runs from it either


def _ssh_config(w: Walk, profile: Profile) -> None:
    """ssh reads its configuration before it connects: an error there is no host's fault."""
    from ecflow_remote.transport import ssh

    config = profile.gateway.ssh_config
    argv = [*ssh.probe(profile), "-G", ssh.destination(ssh.first_hop(profile))]
    env = ssh.ssh_environ(profile)
    done = subprocess.run(argv, **_CHECK_RUN, env=env)
    where = str(config) if config else "~/.ssh/config, /etc/ssh/ssh_config"
    if done.returncode != 0:
        what, todo = ssh.explain_parts(done.stderr)
        w.fail("ssh config", what, todo or f"fix {where}")
    else:
        w.ok("ssh config", f"{where} read")


def _ssh_hop(w: Walk, profile: Profile, via: list[SshTarget], hop: SshTarget, name: str) -> None:
    w.add(_hop_step(profile, via, hop, name))


def _hop_step(profile: Profile, via: list[SshTarget], hop: SshTarget, name: str) -> Step:
    """Whether ssh through `via` logs in to `hop` and runs `true`: the step, ok, warn or fail."""
    from ecflow_remote.transport import ssh

    argv = ssh.probe(profile)
    if via:
        argv += ["-J", ",".join(str(j) for j in via)]
    argv += [ssh.destination(hop), "true"]
    try:
        done = subprocess.run(argv, **_CHECK_RUN, env=ssh.ssh_environ(profile))
    except subprocess.TimeoutExpired:
        what = f"{hop.host} did not answer within {SSH_TIMEOUT:.0f} s"
        return Step(name, "fail", what, "check the network, VPN and host name")
    if done.returncode == 0:
        return Step(name, "ok", f"ssh {hop} works")
    err = done.stderr
    if ssh.is_auth_failure(err):
        refused = certs.refusal(profile, certs.find(profile), err)
        return Step(name, "fail", refused.what, refused.fix)
    if via and re.search(r"open failed|stdio forwarding failed|kex_exchange_identification|Connection closed", err):
        return Step(
            name,
            "fail",
            f"the jump host could not open an SSH connection to {hop.host}:{hop.port or 22} (its sshd is down, or "
            "the host is off)",
            f"check that {hop.host} is up and runs sshd (ask its administrator), or choose another gateway.host",
        )
    if re.search(r"refused|timed out|No route|unreachable|resolve|closed", err, re.IGNORECASE):
        what, todo = ssh.explain_parts(err)
        return Step(name, "fail", what, todo or f"check that {hop.host} is up and that the profile names it right")
    # Logged in, but no command allowed (a Teleport proxy): the link itself works.
    return Step(name, "warn", f"ssh {hop} connected but ran no command: {ssh.explain(err)}")


@contextlib.contextmanager
def _probe(w: Walk, profile: Profile) -> Iterator[tuple[tuple[str, int], tuple[str, str]]]:
    """A private SOCKS proxy at the workstation for the service checks: works whether a tunnel runs or not.

    As with the socks method, ssh -D listens on a unix socket in a 0700 directory (no other local user can reach
    it) and only our password-checking front, with a user and password made for this run, listens on loopback TCP.
    Yields the front's address, and that user and password (the clients' proxy and proxy_auth).
    """
    from ecflow_remote.access import socks
    from ecflow_remote.transport import ssh

    with tempfile.TemporaryDirectory(prefix="ecflow-remote-doctor-") as tmp:  # mkdtemp: 0700
        path = socks.socket_path(Path(tmp))
        argv = [*ssh.probe(profile), "-o", "ExitOnForwardFailure=yes", "-N", "-D", str(path)]
        if profile.gateway.jump:
            argv += ["-J", ",".join(str(j) for j in profile.gateway.jump)]
        argv.append(ssh.destination(profile.gateway.host))
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),  # no probe outlives a killed doctor
            env=ssh.ssh_environ(profile),
        )
        try:
            deadline = time.monotonic() + SSH_TIMEOUT
            while not accepts(path):
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr and proc.poll() is not None else ""
                    w.fail("workstation", f"could not open a SOCKS probe at the workstation: {ssh.explain(err)}")
                time.sleep(0.05)
            creds = socks.Credentials.new()
            with socks.SocksFront(("127.0.0.1", 0), path, creds) as front:
                yield front.listen, creds.pair()
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr:
                proc.stderr.close()


def _ui_version(exe: str) -> str:
    target = exe if exe.endswith(".x") else (shutil.which("ecflow_ui.x") or exe)
    try:
        done = subprocess.run(
            [target, "--version"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return "(version unknown)"
    out = (done.stdout or done.stderr).strip().splitlines()
    return f"version {out[0]}" if out else "(version unknown)"
