"""`make demo`: a simulated Centre, and ecflow-remote's main job run against it, command by command."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from centre import Centre
from centre.isolation import isolate_resolver

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def step(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def ecflow_remote(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the real command line, showing it as a user would type it."""
    print(f"$ ecflow-remote {shlex.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "ecflow_remote", "--profile", str(profile), *args], check=check)


def show_recovery(profile: Path) -> None:
    from ecflow_remote.tunnel.handle import Tunnel
    from ecflow_remote.tunnel.rundir import wait_for

    tunnel = Tunnel(profile)
    state = tunnel.state()
    old = state.pid if state else None
    if old is None:
        print("no ssh to kill: the tunnel is not up")
        return
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    back = wait_for(lambda: (s := tunnel.state()) is not None and s.state == "up" and s.pid not in (None, old), 20)
    took = time.monotonic() - t0
    print(f"ssh {old} killed; " + (f"tunnel up again after {took:.2f} s" if back else "not back after 20 s"))


def has_command(name: str) -> bool:
    from ecflow_remote.cli.main import main

    return name in main.commands


def main() -> None:
    isolate_resolver()
    os.environ.setdefault("ECFLOW_REMOTE_RUNTIME_DIR", tempfile.mkdtemp(prefix="ecfr-demo-"))
    t0 = time.monotonic()
    step("Starting a simulated Centre: jump host, workstation machine1, ecFlow servers, two log servers")
    with Centre() as centre:
        print(f"Centre {centre.run_id} up in {time.monotonic() - t0:.1f} s; home cannot reach it except through jump")
        profile = centre.write_profile(centre.base / "profile.toml", "hosts")
        step(f"The profile ({profile})")
        print(profile.read_text())
        try:
            step("Tunnel up: one command instead of the how-to's ssh -J ... -L ... and /etc/hosts edits")
            ecflow_remote(profile, "up", "--detach")
            step("Which servers answer?")
            ecflow_remote(profile, "status")
            step("Any program, with the Centre's own host names and ports")
            ecflow_remote(profile, "run", "--", "ecflow_client", "--host", "machine1", "--port", "4141", "--ping")
            ecflow_remote(profile, "run", "--server", "machine2", "--", "ecflow_client", "--ping")
            lab, ops = centre.servers[0], centre.servers[1]
            if has_command("suites"):
                step("A suite, as ecflow_ui would colour it")
                ecflow_remote(profile, "suites", "machine1")
            if has_command("output"):
                step("Job output, read through each log server (the how-to reaches only one)")
                ecflow_remote(profile, "output", "machine1", f"/{lab.suite}/f1/hello", "--tail", "3")
                ecflow_remote(profile, "output", "machine2", f"/{ops.suite}/f1/hello", "--tail", "3")
            else:
                step("Job output, read through each log server (the how-to reaches only one)")
                code = (
                    "import socket,sys; s=socket.create_connection((sys.argv[1],9316)); "
                    "s.sendall(('get '+sys.argv[2]+'\\n').encode()); "
                    "print(b''.join(iter(lambda:s.recv(65536),b'')).decode().splitlines()[0])"
                )
                for spec in (lab, ops):
                    ecflow_remote(
                        profile, "run", "--", "/usr/bin/python3", "-c", code, spec.logserver, str(centre.jobout(spec))
                    )
            if has_command("web"):
                from centre import webshot

                step("Every server in a browser: ecflow-remote web (headless chromium here)")
                print(webshot.show(profile, Path(tempfile.gettempdir()) / "ecflow-remote-web.png"))
            step("The link drops (ssh killed with kill -9): the supervisor notices and reconnects")
            show_recovery(profile)
            ecflow_remote(profile, "run", "--server", "machine1", "--", "ecflow_client", "--ping")
        finally:
            step("Tunnel down")
            ecflow_remote(profile, "down", check=False)
    step(f"Centre removed, nothing left behind ({time.monotonic() - t0:.1f} s in all)")


if __name__ == "__main__":
    main()
