"""The simulated Centre is faithful: home reaches it only through the SSH gateway, as the how-to describes."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

import pytest
from centre import howto, network
from centre.centre import STATE_DIR, cleanup_stale

ECFLOW_PYTHON = "/usr/bin/python3"  # python3-ecflow is built for Debian's Python only


def test_home_cannot_reach_centre_hosts_directly(centre: Any) -> None:
    machine1 = centre.host("machine1")
    # By address: the Centre LAN is unreachable from home.
    with pytest.raises(OSError):
        socket.create_connection((machine1.address, 4141), timeout=2)
    # By name: not resolvable at home (and the lookup never leaves the machine).
    proc = subprocess.run(
        ["ecflow_client", "--host", "machine1", "--port", "4141", "--ping"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("machine1", 4141)
    with open("/etc/resolv.conf") as f:
        assert f.read().split()[-1] == "127.0.0.1"


def test_jump_is_reachable_but_does_not_route(centre: Any) -> None:
    jump_home = centre.topology.jump_home_address
    socket.create_connection((jump_home, 22), timeout=2).close()
    forwarding = centre.exec("jump", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip()
    assert forwarding == "0"


def test_centre_hosts_see_each_other_by_name(centre: Any) -> None:
    out = centre.exec("machine1", ["getent", "hosts", "logserver2"]).stdout
    assert centre.host("logserver2").address in out
    assert centre.exec("machine2", ["hostname"]).stdout.strip() == "machine2"


def test_servers_are_running_with_suites_and_output(centre: Any) -> None:
    for spec in centre.servers:
        code = (
            f"import ecflow; c = ecflow.Client('{spec.host}', {spec.port}); c.sync_local(); "
            f"d = c.get_defs(); print(c.stats()) if False else None; "
            f"print(d.get_server_state(), [s.name() for s in d.suites], "
            f"d.find_abs_node('/{spec.suite}/f1/hello').get_state())"
        )
        out = centre.python_in(spec.host, code)
        assert out.split()[0] == "RUNNING", out
        assert f"['{spec.suite}']" in out and out.split()[-1] == "complete", out
        text = centre.jobout(spec).read_text()
        assert text.startswith(f"hello from /{spec.suite}/f1/hello on {spec.host}, served by {spec.logserver}:9316")


def test_howto_local_forwarding_works(centre: Any, local_forward: Any) -> None:
    for spec in centre.servers:
        _, port = local_forward.endpoint(spec.host, spec.port)
        proc = subprocess.run(
            ["ecflow_client", "--host", "localhost", "--port", str(port), "--ping"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0 and "succeeded" in proc.stdout, proc.stderr
        code = (
            f"import ecflow; c = ecflow.Client('localhost', {port}); c.sync_local(); "
            f"print(sorted(n.get_abs_node_path() for n in c.get_defs().get_all_nodes()))"
        )
        out = subprocess.run([ECFLOW_PYTHON, "-c", code], capture_output=True, text=True, timeout=30, check=True)
        assert f"'/{spec.suite}/f1/hello'" in out.stdout


def _logserver_get(address: tuple[str, int], path: str) -> bytes:
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(f"get {path}\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_howto_job_output_through_logserver(centre: Any, local_forward: Any) -> None:
    for spec in centre.servers:
        path = centre.jobout(spec)
        data = _logserver_get(local_forward.endpoint(spec.logserver, 9316), str(path))
        assert data == path.read_bytes()


def test_howto_socks_proxy_reaches_names(centre: Any, socks_proxy: Any) -> None:
    # A plain-socket client through the SOCKS proxy, with the Centre's own names resolved at the far end.
    spec = centre.servers[1]
    with socket.create_connection(socks_proxy.address, timeout=5) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        name = spec.logserver.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + (9316).to_bytes(2, "big"))
        assert s.recv(10)[1] == 0
        s.sendall(b"version\n")
        assert s.recv(100).strip() == b"2"


def test_expired_certificate_is_refused(make_centre: Any) -> None:
    # Long enough for the first login on a busy machine (two ssh handshakes), short enough to wait out.
    issued = time.monotonic()
    c = make_centre(certificate_validity="+8s")
    argv = ["ssh", "-F", str(c.ssh_config), "-o", "BatchMode=yes", "-J", c.jump, c.workstation, "true"]
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    time.sleep(max(0.0, issued + 9 - time.monotonic()))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 255 and "Permission denied" in proc.stderr
    c.issue_certificate("+1h")  # `tsh login` again
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0


def test_cut_link_and_restore(centre: Any, local_forward: Any) -> None:
    jump_home = centre.topology.jump_home_address
    centre.cut_link()
    try:
        with pytest.raises(OSError):
            socket.create_connection((jump_home, 22), timeout=1)
    finally:
        centre.restore_link()
    socket.create_connection((jump_home, 22), timeout=5).close()


def test_down_leaves_nothing_even_after_a_crash(tmp_path: Any) -> None:
    from centre import Centre

    c = Centre().up()
    run_id = c.run_id
    # A crash: the owner forgets its Centre; a later cleanup must still find and remove every piece.
    tunnel = howto.local_forward(c).start()
    tunnel.stop()
    c.topology = None
    c._procs.clear()
    state = STATE_DIR / f"{run_id}.json"
    state.write_text(state.read_text().replace('"owner": ', '"owner": 999999999, "was": '))
    assert run_id in cleanup_stale()
    assert network.list_netns(run_id) == []
    assert not list(network.NETNS_ETC.glob(f"{run_id}-*")) if network.NETNS_ETC.exists() else True
    assert run_id not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert subprocess.run(["pgrep", "-f", f"ecfr-{run_id}"], capture_output=True).returncode == 1
    c.down()  # safe to call twice
