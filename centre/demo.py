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

from centre import Centre, HomeLink
from centre.centre import WEB_DOMAIN
from centre.isolation import isolate_resolver, private_runtime

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


def wait_found(profile: Path, host: str) -> None:
    """Until the supervisor has found `host` in a suite's ECF_LOGHOST (its first look is right after up)."""
    from ecflow_remote.tunnel.handle import Tunnel
    from ecflow_remote.tunnel.rundir import wait_for

    tunnel = Tunnel(profile)
    if not wait_for(lambda: any(e.host == host for e in tunnel.plan().logservers()), 20):
        print(f"{host} not found within 20 s")


def where_output_came_from(profile: Path, server: str, node: str) -> str:
    """The log server `output` read a task's job output through, and how the tunnel knows it."""
    import asyncio

    from ecflow_remote import output
    from ecflow_remote.tunnel.handle import Tunnel

    source = asyncio.run(output.locate(Tunnel(profile), server, node))
    e = source.endpoint
    if e is None:
        return f"(read through {source.describe()})"
    how = "named in the profile" if e.origin == "profile" else f"found in {', '.join(e.used_by)}"
    return f"(read through log server {e.host}:{e.port} at {e.local_host}:{e.local_port}: {how})"


def show_jupyter(centre: Centre, profile: Path) -> None:
    """The Centre's Jupyter in a browser at home, through the tunnel's web proxy (headless chromium here)."""
    from centre import jupyter
    from ecflow_remote.tunnel.handle import Tunnel

    server = jupyter.start(centre, f"jupyter.{WEB_DOMAIN}")
    step("The Centre's Jupyter in a browser at home: its real name, through the tunnel's web proxy and PAC file")
    ecflow_remote(profile, "open", "--print", f"{server.url}/lab")
    state = Tunnel(profile).state()
    if state is None or state.web_pac is None:
        print("the tunnel is not up: no web proxy")
        return
    print(jupyter.show(server, state.web_pac, "import socket; print(socket.gethostname(), 6 * 7)"))


def has_command(name: str) -> bool:
    from ecflow_remote.cli.main import main

    return name in main.commands


def main() -> None:
    isolate_resolver()
    t0 = time.monotonic()
    step("Starting a simulated Centre: jump host, workstation machine1, ecFlow servers, two log servers")
    # As at home: the far-side agent runs where the link is slow (on a LAN ssh's own channels are as quick).
    link = HomeLink(rtt=0.030, down_mbit=100, up_mbit=20)
    web = {"jupyter": (f"jupyter.{WEB_DOMAIN}",)}  # a web host the tunnel's web proxy reaches (`open`)
    with private_runtime("ecfr-demo-"), Centre(home_link=link, web_hosts=web) as centre:
        print(f"Centre {centre.run_id} up in {time.monotonic() - t0:.1f} s; home cannot reach it except through jump")
        print(f"Home link: {link.describe()} (emulated), as from a laptop at home")
        # logserver2 (ops' ECF_LOGHOST) is left out: the tunnel finds it in the suite by itself.
        profile = centre.write_profile(centre.base / "profile.toml", "hosts", logservers=("logserver1",))
        step(f"The profile ({profile}): one log server named, the other for the tunnel to find")
        print(profile.read_text())
        try:
            step("Tunnel up: one command instead of the how-to's ssh -J ... -L ... and /etc/hosts edits")
            ecflow_remote(profile, "up", "--detach")
            wait_found(profile, "logserver2")
            step("Which servers answer? (logserver2: found in ops' ECF_LOGHOST, not in the profile)")
            ecflow_remote(profile, "status")
            step("Any program, with the Centre's own host names and ports")
            ecflow_remote(profile, "run", "--", "ecflow_client", "--host", "machine1", "--port", "4141", "--ping")
            ecflow_remote(profile, "run", "--server", "machine2", "--", "ecflow_client", "--ping")
            lab, ops = centre.servers[0], centre.servers[1]
            if has_command("suites"):
                step("A suite, as ecflow_ui would colour it")
                ecflow_remote(profile, "suites", "machine1")
            if has_command("node"):
                step("A family suspended and resumed from home, as ecflow_ui's Suspend/Resume (pure Python)")
                ecflow_remote(profile, "node", "suspend", "machine1", f"/{lab.suite}/f1")
                ecflow_remote(profile, "suites", "machine1", f"/{lab.suite}/f1")
                ecflow_remote(profile, "node", "resume", "machine1", f"/{lab.suite}/f1")
                ecflow_remote(profile, "suites", "machine1", f"/{lab.suite}/f1")
            if has_command("output"):
                step("Job output, through each suite's log server (logserver2's: one the profile does not name)")
                ecflow_remote(profile, "output", "machine1", f"/{lab.suite}/f1/hello", "--tail", "3")
                ecflow_remote(profile, "output", "machine2", f"/{ops.suite}/f1/hello", "--tail", "3")
                print(where_output_came_from(profile, "machine2", f"/{ops.suite}/f1/hello"))
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
            if has_command("open"):
                show_jupyter(centre, profile)
            step("The link drops (ssh killed with kill -9): the supervisor notices and reconnects")
            show_recovery(profile)
            ecflow_remote(profile, "run", "--server", "machine1", "--", "ecflow_client", "--ping")
        finally:
            step("Tunnel down")
            ecflow_remote(profile, "down", check=False)
    step(f"Centre removed, nothing left behind ({time.monotonic() - t0:.1f} s in all)")


if __name__ == "__main__":
    main()
