"""Issue 22: every server the Centre runs — ecFlow 5.9, 5.13 (plain, TLS) and 5.19 (plain, TLS, HTTP, HTTPS) — through
a tunnel."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.centres import new_text, size
from tests.integration.test_ui import UI_HOST, launch_ui, stop_ui
from tests.integration.test_ui import display as display  # the X server fixture

from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "ecflow-remote")


def _specs() -> tuple[Any, ...]:
    from centre.centre import EcflowServerSpec

    return (
        EcflowServerSpec("machine1", 4141, "lab", "logserver1"),
        EcflowServerSpec("machine2", 3150, "new13", "logserver2", version="5.13"),
        EcflowServerSpec("machine2", 3151, "tls13", "logserver2", version="5.13", protocol="ssl"),
        EcflowServerSpec("machine3", 3190, "new19", "logserver1", version="5.19"),
        EcflowServerSpec("machine3", 3191, "http19", "logserver2", version="5.19", protocol="http"),
        EcflowServerSpec("machine3", 3192, "tls19", "logserver1", version="5.19", protocol="ssl"),
        # ecflow_server --http behind the Centre's TLS front (centre/tlsfront.py): ecFlow serves no https itself.
        EcflowServerSpec("machine3", 3193, "https19", "logserver2", version="5.19", protocol="https"),
    )


# Profile name -> (version the server reports, its spec's index).
SERVERS = {
    "machine1": ("5.9.2", 0),
    "machine2-3150": ("5.13.8", 1),
    "machine2-3151": ("5.13.8", 2),
    "machine3-3190": ("5.19.0", 3),
    "machine3-3191": ("5.19.0", 4),
    "machine3-3192": ("5.19.0", 5),
    "machine3-3193": ("5.19.0", 6),
}
# The servers that speak something else than ecFlow's plain framing, and their protocol codes in servers.txt.
OTHER = {"machine2-3151": "1", "machine3-3191": "2", "machine3-3192": "1", "machine3-3193": "3"}


def cli(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([CLI, "--profile", str(profile), *args], capture_output=True, text=True, timeout=90)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def newer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Path]]:
    """One Centre with the newer servers beside 5.9, a tunnel to all of them, and the laptop's certificate
    directory (ECF_SSL_DIR, which ecflow_client honours too) holding the TLS servers' certificates."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        pytest.skip("integration tests need Linux and root")
    from centre import Centre
    from centre.chroots import ChrootMissing

    from ecflow_remote.tunnel.handle import Tunnel

    tmp = tmp_path_factory.mktemp("versions")
    ssl_dir = tmp / "ssl"
    ssl_dir.mkdir()
    old = os.environ.get("ECF_SSL_DIR")
    os.environ["ECF_SSL_DIR"] = str(ssl_dir)
    centre = Centre(servers=_specs())
    tunnel = None
    try:
        try:
            centre.up()
        except ChrootMissing as e:
            pytest.skip(str(e))
        for name in ("machine2.3151", "machine3.3192"):
            shutil.copy(centre.server_ssl_dir / "server.crt", ssl_dir / f"{name}.crt")
        profile = centre.write_profile(tmp / "profile.toml")
        tunnel = Tunnel(profile)
        tunnel.up()
        yield centre, tunnel, profile
    finally:
        if tunnel is not None:
            tunnel.down()
        centre.down()
        if old is None:
            os.environ.pop("ECF_SSL_DIR", None)
        else:
            os.environ["ECF_SSL_DIR"] = old


def test_status_suites_node_why_output_on_every_version(newer: tuple[Any, Any, Path]) -> None:
    centre, _, profile = newer
    report = json.loads(cli(profile, "status", "--json").stdout)
    versions = {s["name"]: s["version"] for s in report["servers"] if s["reachable"]}
    assert versions == {name: version for name, (version, _) in SERVERS.items()}, report

    for name, (_, index) in SERVERS.items():
        spec = centre.servers[index]
        tree = cli(profile, "suites", name).stdout
        assert "task hello  complete" in tree and "family f2  queued suspended" in tree, (name, tree)

        path = f"/{spec.suite}/f1/hello"
        log = centre.server_log(spec)
        assert cli(profile, "node", "suspend", name, path).stdout == f"Suspended {path} on {name}.\n"
        # Read back by the server's own client (a newer one from its chroot, in its protocol).
        dstate = centre.ecflow_client(spec.host, spec.port, ["--query", "dstate", path]).stdout
        assert dstate.strip().splitlines()[-1] == "suspended", (name, dstate)
        assert wait_for(lambda: f"--suspend {path}" in log.read_text(), 5), name  # noqa: B023
        assert cli(profile, "node", "resume", name, path).returncode == 0
        dstate = centre.ecflow_client(spec.host, spec.port, ["--query", "dstate", path]).stdout
        assert dstate.strip().splitlines()[-1] == "complete", (name, dstate)

        why = cli(profile, "why", name, f"/{spec.suite}/f2/later").stdout
        assert f"Parent /{spec.suite}/f2 is suspended" in why.splitlines(), (name, why)

        got = cli(profile, "output", name, path).stdout
        assert got == centre.jobout(spec).read_text(), name


def test_watch_on_every_version_and_protocol(newer: tuple[Any, Any, Path]) -> None:
    """The live tree (news/sync polling) on every server, plain, TLS, HTTP and HTTPS: a suspend arrives as a
    change."""
    centre, tunnel, _ = newer
    for name in SERVERS:
        spec = centre.servers[SERVERS[name][1]]
        path = f"/{spec.suite}/f1/hello"
        client = tunnel.ecflow_client(name)

        seen = asyncio.run(_watch_suspend(client, path))
        assert any(c.path == path and c.what == "suspended" and c.new is True for c in seen), (name, seen)


@pytest.mark.timeout(120)  # readline waits for lines that a bug would never print
def test_suites_watch_on_every_version_and_protocol(newer: tuple[Any, Any, Path]) -> None:
    """`suites NAME --watch`: the tree, then the line for a suspend made by the server's own client."""
    centre, _, profile = newer
    for name in SERVERS:
        spec = centre.servers[SERVERS[name][1]]
        path = f"/{spec.suite}/f1/hello"
        follower = subprocess.Popen(
            [CLI, "--profile", str(profile), "suites", name, "--watch", "--interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline().strip() == f"{name}  RUNNING"
            centre.ecflow_client(spec.host, spec.port, ["--suspend", path])
            line = ""
            while f"{path} suspended" not in line:
                line = follower.stdout.readline()
                assert line, follower.stderr.read() if follower.stderr else ""
            assert line.rstrip().endswith(f"{path} suspended: False -> True"), line
        finally:
            follower.terminate()
            follower.wait(10)
            centre.ecflow_client(spec.host, spec.port, ["--resume", path])


async def _watch_suspend(client: Any, path: str) -> list[Any]:
    """The changes a watch sees while `path` is suspended (and resumed after)."""
    async with client.watch(0.2) as w:
        await client.node_action("suspend", path)
        seen: list[Any] = []
        for _ in range(25):
            seen.extend((await w.poll()).changes)
            if any(c.path == path and c.what == "suspended" for c in seen):
                break
            await asyncio.sleep(0.2)
        await client.node_action("resume", path)
        return seen


def test_protocol_mismatch_and_missing_certificate(newer: tuple[Any, Any, Path], tmp_path: Path) -> None:
    """A profile that says plain for the TLS, the HTTP and the HTTPS server, and one whose certificate is nowhere: one
    line each, naming the protocol to set or the files looked for."""
    _, tunnel, _ = newer
    host, port = tunnel.endpoint("machine2-3151")
    from ecflow_remote.clients.ecflow import EcflowClient
    from ecflow_remote.errors import ProtocolMismatch, ServerCertificateError

    with pytest.raises(ProtocolMismatch, match='speaks TLS: set protocol = "ssl" for it in the profile'):
        EcflowClient(host, port, name="machine2-3151").ping()
    host, port = tunnel.endpoint("machine3-3191")
    with pytest.raises(ProtocolMismatch, match='speaks HTTP: set protocol = "http" for it in the profile'):
        EcflowClient(host, port, name="machine3-3191").ping()
    host, port = tunnel.endpoint("machine3-3193")
    with pytest.raises(ProtocolMismatch, match='speaks HTTPS: set protocol = "https" for it in the profile'):
        EcflowClient(host, port, name="machine3-3193").ping()

    empty = tmp_path / "no-certificates"
    empty.mkdir()
    host, port = tunnel.endpoint("machine2-3151")
    client = EcflowClient(host, port, name="machine2-3151", protocol="ssl", server=("machine2", 3151))
    old = os.environ["ECF_SSL_DIR"]
    os.environ["ECF_SSL_DIR"] = str(empty)
    try:
        with pytest.raises(ServerCertificateError) as info:
            client.ping()
    finally:
        os.environ["ECF_SSL_DIR"] = old
    assert f"looked for {empty}/machine2.3151.crt or {empty}/server.crt" in str(info.value)

    # A wrong certificate (another server's): the handshake is refused, named as such.
    wrong = tmp_path / "wrong"
    from centre.chroots import make_tls_files

    shutil.copy(make_tls_files(wrong / "made", "another server"), wrong / "machine2.3151.crt")
    os.environ["ECF_SSL_DIR"] = str(wrong)
    try:
        with pytest.raises(ServerCertificateError, match="does not vouch for"):
            client.ping()
    finally:
        os.environ["ECF_SSL_DIR"] = old


def test_certificate_fetched_from_the_workstation_once(newer: tuple[Any, Any, Path], tmp_path: Path) -> None:
    """Missing at home, present in the workstation user's ~/.ecflowrc/ssl: copied home through the tunnel, and
    said so, the first time only."""
    centre, _, profile = newer
    from centre.centre import CENTRE_UID

    far = centre.base / "centre-home" / centre.centre_user / ".ecflowrc" / "ssl"
    far.mkdir(parents=True, exist_ok=True)
    shutil.copy(centre.server_ssl_dir / "server.crt", far / "server.crt")
    for p in (far.parent, far, far / "server.crt"):
        os.chown(p, CENTRE_UID, CENTRE_UID)
    home = tmp_path / "home-ssl"
    env = {**os.environ, "ECF_SSL_DIR": str(home)}
    first = subprocess.run(
        [CLI, "--profile", str(profile), "suites", "machine2-3151"], capture_output=True, text=True, env=env, timeout=90
    )
    assert first.returncode == 0, first.stderr
    assert "task hello  complete" in first.stdout
    assert f"fetched the server certificate user1@machine1:~/.ecflowrc/ssl/server.crt to {home}/server.crt" in (
        first.stderr
    )
    assert (home / "server.crt").read_bytes() == (centre.server_ssl_dir / "server.crt").read_bytes()
    again = subprocess.run(
        [CLI, "--profile", str(profile), "suites", "machine2-3151"], capture_output=True, text=True, env=env, timeout=90
    )
    assert again.returncode == 0 and "fetched" not in again.stderr, again.stderr


def test_run_gives_ecflow_client_what_tls_needs(newer: tuple[Any, Any, Path]) -> None:
    """`run --server` for a TLS server: ECF_SSL=1 and a private ECF_SSL_DIR holding the certificate under the
    names ecflow_client looks for (server.crt, <ECF_HOST>.<ECF_PORT>.crt); gone after the command."""
    _, tunnel, profile = newer
    show = 'echo "$ECF_SSL $ECF_SSL_DIR"; ls "$ECF_SSL_DIR"'
    done = cli(profile, "run", "--server", "machine2-3151", "--", "sh", "-c", show)
    first, *names = done.stdout.split()
    given = names.pop(0)
    assert given.endswith("/")  # ecFlow appends the file name to it as it is
    ssl_dir = Path(given)
    host, port = tunnel.endpoint("machine2-3151")
    assert first == "1" and sorted(names) == sorted([f"{host}.{port}.crt", "server.crt"]), done.stdout
    assert not ssl_dir.exists()


def test_doctor_and_found_logservers_on_every_version_and_protocol(
    newer: tuple[Any, Any, Path], tmp_path: Path
) -> None:
    """doctor pings every version and protocol; a profile naming no log server: the tunnel finds them in every
    server's definition (ECF_LOGHOST), and `output` reads through them."""
    centre, _, _ = newer
    from ecflow_remote import doctor
    from ecflow_remote.tunnel.handle import Tunnel

    profile = centre.write_profile(tmp_path / "found.toml", "local", logservers=())
    report = doctor.diagnose(profile, timeout=10)
    assert report.broken is None, report.text()
    names = [s.name for s in report.steps]
    assert all(f"ping {name}" in names for name in SERVERS), names

    tunnel = Tunnel(profile)
    try:
        tunnel.up()
        assert tunnel.wait_found(20)
        for name in SERVERS:
            spec = centre.servers[SERVERS[name][1]]
            got = cli(profile, "output", name, f"/{spec.suite}/f1/hello").stdout
            assert got == centre.jobout(spec).read_text(), name
        found = {e.host for e in tunnel.endpoints() if e.kind == "logserver" and e.origin == "found"}
        assert found == {"logserver1", "logserver2"}, tunnel.endpoints()
    finally:
        tunnel.down()


# ecflow_ui from a chroot: it sees this machine's /tmp (the X socket, its config dir, the run directory) and the
# /etc view `ui` gives it (the private hosts file), in a mount namespace of its own.
CHROOT_PROGRAM = """#!/bin/sh
exec unshare --mount --propagation private -- /bin/sh -c '
r={root}
for f in hosts resolv.conf passwd group; do touch $r/etc/$f; mount --bind /etc/$f $r/etc/$f; done
mount --rbind /tmp $r/tmp
mount --bind /dev $r/dev
mount -t proc proc $r/proc
exec chroot $r {program} "$@"' sh "$@"
"""


def chroot_program(directory: Path, program: str) -> Path:
    """A script in `directory` that runs the Debian unstable chroot's `program` (ecFlow 5.19's) here."""
    from centre.chroots import root

    wrapper = directory / Path(program).name
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(CHROOT_PROGRAM.format(root=root("5.19"), program=program))
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize(
    ("release", "method"), [("5.19", "hosts"), ("5.9", "hosts"), ("5.19", "local"), ("5.9", "local")]
)
def test_ecflow_ui_reaches_every_version_and_protocol(
    newer: tuple[Any, Any, Path], display: str, tmp_path: Path, release: str, method: str
) -> None:
    """`ui` with ecflow_ui 5.19 (from the Debian unstable chroot, named by `[ui] ecflow_ui`) and with Debian 12's
    5.9 (the first on PATH), the Centre's names (hosts) or localhost and the local ports (local): the server list
    carries the protocol codes, and every server's own log shows the UI's full sync: 5.19 reaches all, TLS, HTTP and
    HTTPS included; 5.9 (no HTTP) the plain and TLS servers, with the certificates `ui` put where 5.9 reads them."""
    centre, _, _ = newer
    from ecflow_remote.tunnel.handle import Tunnel

    profile = centre.write_profile(tmp_path / "ui.toml", method)
    wanted = list(centre.servers)
    if release == "5.19":
        wrapper = chroot_program(tmp_path / "bin", "/usr/bin/ecflow_ui")
        profile.write_text(profile.read_text() + f'\n[ui]\necflow_ui = "{wrapper}"\n')
    else:
        wanted = [s for s in wanted if s.protocol in ("plain", "ssl")]
    # The UI's own home: 5.9 reads certificates only from its ~/.ecflowrc/ssl, where `ui` puts them.
    home = tmp_path / "home"
    home.mkdir()
    logs = {spec: centre.server_log(spec) for spec in centre.servers}
    offsets = {spec: size(path) for spec, path in logs.items()}
    own = tmp_path / "own"
    own.mkdir()
    tunnel = Tunnel(profile)
    try:
        tunnel.up()
        proc, config = launch_ui(centre, tunnel, display, own, tmp_path / "ui.log", env={"HOME": str(home)})
        try:
            rows = {s.name: s for s in config.servers}
            codes = {name: row.row().split(",")[5] for name, row in rows.items()}
            assert codes == {n: OTHER.get(n, "0") for n in SERVERS}, codes
            ssl_dir = home / ".ecflowrc" / "ssl"
            if release == "5.9":
                # Named as 5.9 looks: the row's host and port, `localhost` under the UI's own host name.
                files = {
                    n: ssl_dir / f"{UI_HOST if rows[n].host == 'localhost' else rows[n].host}.{rows[n].port}.crt"
                    for n in ("machine2-3151", "machine3-3192")
                }
                assert list(config.notes) == [
                    *(
                        f"put {n}'s certificate at {f}: ecflow_ui 5.9.2 reads certificates only from {ssl_dir}"
                        for n, f in files.items()
                    ),
                    "ecflow_ui 5.9.2 speaks no HTTP (5.14 and later do): machine3-3191, machine3-3193 will not "
                    "connect in it; name a newer ecflow_ui with [ui] ecflow_ui in the profile, or use `ecflow-remote "
                    "web`",
                ]
                server_crt = (centre.server_ssl_dir / "server.crt").read_bytes()
                assert all(f.read_bytes() == server_crt for f in files.values())
            else:
                assert config.notes == () and not ssl_dir.exists()

            def synced(spec: Any) -> bool:
                return re.search(rf"--sync_full\S*\s*:\S+@{UI_HOST}", new_text(logs[spec], offsets[spec])) is not None

            wait_for(lambda: all(synced(s) for s in wanted) or proc.poll() is not None, 90, 0.5)
            text = (tmp_path / "ui.log").read_text(errors="replace")
            assert proc.poll() is None, f"ecflow_ui exited: {text[-3000:]}"
            for spec in wanted:
                assert synced(spec), f"{spec.host}:{spec.port}: {new_text(logs[spec], offsets[spec])[-1500:]}"
        finally:
            stop_ui(proc)
    finally:
        tunnel.down()


def test_web_page_serves_every_version_and_protocol(newer: tuple[Any, Any, Path]) -> None:
    """`ecflow-remote web`: each server's tree (read by its live feed over plain, TLS or HTTP) in the page's API."""
    import http.client

    from tests.integration.test_web_browser import WebProcess

    _, _, profile = newer
    web = WebProcess(profile)
    try:
        port = int(web.url.split(":")[2].split("/")[0])
        token = web.url.split("token=")[1]

        def tree(name: str) -> tuple[int, str]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                headers = {"Authorization": f"Bearer {token}", "Host": f"127.0.0.1:{port}"}
                conn.request("GET", f"/api/tree?server={name}", headers=headers)
                reply = conn.getresponse()
                return reply.status, reply.read().decode()
            finally:
                conn.close()

        for name, (_, index) in SERVERS.items():
            assert wait_for(lambda: tree(name)[0] == 200, 20, 0.2), (name, tree(name))  # noqa: B023
            reply = json.loads(tree(name)[1])
            # Nodes as [parent index, name, kind, state, ...]: the suite first, its tasks in it.
            rows = {row[1]: row[3] for row in reply["nodes"]}
            assert reply["nodes"][0][1] == _specs()[index].suite, (name, reply)
            assert rows["hello"] == "complete" and rows["fails"] == "aborted", (name, reply)
    finally:
        web.stop()


def test_http_relay_presents_the_profiles_user(newer: tuple[Any, Any, Path], tmp_path: Path) -> None:
    """An `http` server with an ecflow_user: a program started by `run` (ecFlow 5.19's own ecflow_client --http,
    from its chroot) sends the login name, and the relay presents the profile's name in the POSTed request, as for a
    plain server: the server's own log shows that name, never the login name."""
    centre, _, _ = newer
    from ecflow_remote.access.relay import login_name
    from ecflow_remote.tunnel.handle import Tunnel

    spec = centre.servers[SERVERS["machine3-3191"][1]]
    profile = centre.write_profile(tmp_path / "relay.toml", "hosts", ecflow_user="ecfr-http-user")
    client = chroot_program(tmp_path / "bin", "/usr/bin/ecflow_client")
    log = centre.server_log(spec)
    offset = size(log)
    tunnel = Tunnel(profile)
    try:
        tunnel.up()
        for args in (["--ping"], ["--suspend", f"/{spec.suite}/f1/hello"], ["--resume", f"/{spec.suite}/f1/hello"]):
            done = cli(
                profile, "run", "--", str(client), "--host", spec.host, "--port", str(spec.port), "--http", *args
            )
            assert done.returncode == 0, done.stdout + done.stderr
        seen = new_text(log, offset)
        assert f"--suspend /{spec.suite}/f1/hello :ecfr-http-user@" in seen, seen[-2000:]
        assert f":{login_name()}@" not in seen, seen[-2000:]
    finally:
        tunnel.down()
