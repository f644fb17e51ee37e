"""`make demo`: a simulated Centre, and ecflow-remote's main job run against it, step by step."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from ecflow_remote.centre import Centre, howto
from ecflow_remote.centre.isolation import isolate_resolver


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def main() -> None:
    isolate_resolver()
    t0 = time.monotonic()
    step("Starting a simulated Centre (jump host, workstation machine1, ecFlow servers, two log servers)")
    with Centre() as centre:
        print(f"Centre {centre.run_id} up in {time.monotonic() - t0:.1f} s")
        step("The how-to's Method 1 by hand: ssh -J jump machine1 -N -L ... (the baseline ecflow-remote replaces)")
        with howto.local_forward(centre) as tunnel:
            for spec in centre.servers:
                _, port = tunnel.endpoint(spec.host, spec.port)
                out = subprocess.run(
                    ["ecflow_client", "--host", "localhost", "--port", str(port), "--ping"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                print(f"{spec.host}:{spec.port} -> {out}")
            spec = centre.servers[0]
            path = centre.jobout(spec)
            with socket.create_connection(tunnel.endpoint(spec.logserver, 9316)) as s:
                s.sendall(f"get {path}\n".encode())
                data = b"".join(iter(lambda: s.recv(65536), b""))
            print(f"job output {path} from {spec.logserver}: {len(data)} bytes")
            print(data.decode().splitlines()[0])
    step("Centre removed: nothing left behind")


if __name__ == "__main__":
    main()
