"""ecflow_ui at home as at the Centre (issue 13): settings that stay, the Centre's system server lists, and the
panels that fetch files by ssh — the real ecflow_ui under Xvfb, through the tunnel, the Centre's disk hidden."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.centres import new_text, size
from tests.integration.test_ui import display, launch_ui, stop_ui, user_session, xdotool

from ecflow_remote.tunnel.rundir import wait_for

__all__ = ["display"]  # the X server fixture, shared with test_ui


def loaded(ui_log: Path, suites: list[str], proc: subprocess.Popen[bytes]) -> bool:
    text = ui_log.read_text(errors="replace")
    return all(re.search(rf"loaded=\[?{s}\b", text) for s in suites) or proc.poll() is not None


def quit_ui(display: str) -> None:
    """File > Quit, as a user would: ecflow_ui saves its session and settings only then (no window manager: the
    main window sits at 0,0, its menu bar at the top)."""
    xdotool(display, "mousemove", "20", "8", "click", "1")
    time.sleep(1)
    xdotool(display, "mousemove", "46", "131", "click", "1")


def test_settings_made_in_one_ui_run_are_there_in_the_next(
    centre: Any, tunnel_up: Any, display: str, tmp_path: Path
) -> None:
    """Run 1 (local method) ends with File > Quit, so ecflow_ui writes its own files in its config dir, and the test
    (standing in for a preference the user set) writes one; run 2 (hosts method: other hosts, other ports) finds
    them all, with the tunnel's rows pointed at the new endpoints, and loads every server."""
    suites = [s.suite for s in centre.servers]
    own = tmp_path / "own"
    own.mkdir()
    confd = tmp_path / "confd"

    tunnel = tunnel_up("local")
    log1 = tmp_path / "ui1.log"
    proc, config = launch_ui(centre, tunnel, display, own, log1, confd)
    try:
        assert config.seeded
        assert {s.name: s.host for s in config.servers} == {s.host: "localhost" for s in centre.servers}
        wait_for(lambda: loaded(log1, suites, proc), 60, 0.5)
        assert proc.poll() is None, log1.read_text(errors="replace")[-3000:]
        (confd / "ecflow-remote-test.txt").write_text("kept")
        quit_ui(display)
        assert proc.wait(30) == 0, log1.read_text(errors="replace")[-3000:]
    finally:
        stop_ui(proc)
    tunnel.down()
    saved = {p.relative_to(confd): p.read_bytes() for p in confd.rglob("*") if p.is_file()}
    # ecflow_ui's own, written when it quit.
    assert Path("default.session/window.conf") in saved and Path("default.session/settings.json") in saved

    tunnel = tunnel_up("hosts")
    log2 = tmp_path / "ui2.log"
    proc, config = launch_ui(centre, tunnel, display, own, log2, confd)
    try:
        assert not config.seeded
        assert {s.name: (s.host, s.port) for s in config.servers} == {s.host: (s.host, s.port) for s in centre.servers}
        for name in ("ecflow-remote-test.txt", "default.session/window.conf", "default.session/settings.json"):
            assert (confd / name).read_bytes() == saved[Path(name)], name
        wait_for(lambda: loaded(log2, suites, proc), 60, 0.5)
        assert proc.poll() is None, log2.read_text(errors="replace")[-3000:]
    finally:
        stop_ui(proc)
    assert list(own.iterdir()) == []


# --------------------------------------------------------------------------------------------- system lists


@pytest.fixture
def workstation_lists(centre: Any) -> Iterator[Path]:
    """A directory in the Centre account's home on the workstation (the Centre's hosts share this machine's
    filesystem), for server-list files and a login profile; removed after the test."""
    home = centre.base / "centre-home" / centre.centre_user
    where = home / f"lists-{secrets.token_hex(3)}"
    where.mkdir(mode=0o755)
    profile = home / ".profile"
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)
        profile.unlink(missing_ok=True)


def one_server_profile(centre: Any, path: Path, method: str, ui: str = "") -> Path:
    """The Centre's profile with machine1 only (its log server too), and an optional [ui] table."""
    spec = centre.server("machine1")
    text = "\n".join(
        [
            "[gateway]",
            f'jump = "{centre.jump}"',
            f'host = "{centre.workstation}"',
            f'ssh_config = "{centre.ssh_config}"',
            f'method = "{method}"',
            "",
            "[[server]]",
            f'name = "{spec.host}"',
            f'host = "{spec.host}"',
            f"port = {spec.port}",
            "",
            "[[logserver]]",
            f'host = "{spec.logserver}"',
            "",
            ui,
        ]
    )
    path.write_text(text + "\n")
    return path


def write_lists(centre: Any, where: Path) -> tuple[Path, Path]:
    """A system list naming three servers (one in an included file) and a file that is not there."""
    m1, m2 = (f"{s.host} {s.port}" for s in (centre.server("machine1"), centre.server("machine2")))
    more = where / "more"
    more.write_text("# included\nsys-far machine7 5555\n")
    main = where / "servers"
    main.write_text(f"# the Centre's list\nsys-m1 {m1}\nsys-m2 {m2}\n{more}\n{where / 'gone'}\n")
    for f in (more, main):
        f.chmod(0o644)
    return main, more


def test_system_lists_are_read_on_the_workstation_through_the_tunnel(
    centre: Any, workstation_lists: Path, tmp_path: Path
) -> None:
    """From [ui] system_servers, else from the workstation's login environment: the files (and their includes)
    read there through the tunnel, the profile's server rewritten to its local endpoint (local method), the
    others listed as they are and reported as not carried by the tunnel."""
    from ecflow_remote.tunnel.handle import Tunnel
    from ecflow_remote.ui.systemlists import system_lists

    main, more = write_lists(centre, workstation_lists)
    home = workstation_lists.parent
    profile_path = one_server_profile(centre, tmp_path / "p.toml", "local", f'[ui]\nsystem_servers = ["{main}"]')
    tunnel = Tunnel(profile_path)
    try:
        tunnel.up()
        plan = tunnel.plan()
        local_port = plan.endpoint("machine1").local_port
        lists = system_lists(tunnel.profile, plan, tunnel.rundir.path)
        assert lists.error is None and lists.source == "profile"
        assert lists.paths == (str(main), str(more)) and lists.missing == (str(workstation_lists / "gone"),)
        m2 = centre.server("machine2")
        assert [(s.name, s.host, s.port) for s in lists.servers] == [
            ("sys-m1", "localhost", local_port),
            ("sys-m2", m2.host, m2.port),
            ("sys-far", "machine7", 5555),
        ]
        assert lists.unreachable == ("sys-m2", "sys-far")
        assert lists.env == str(tunnel.rundir.path / "ecflow_ui_system_servers")
        assert f"sys-m1 localhost {local_port}" in Path(lists.env).read_text()

        # No [ui] key: the list the workstation's login environment names (bash -l reads ~/.profile there).
        (home / ".profile").write_text(f"echo hello from the login profile\nexport ECFLOW_SYSTEM_SERVERS_LIST={more}\n")
        bare = one_server_profile(centre, tmp_path / "p.toml", "local")
        lists = system_lists(Tunnel(bare).profile, plan, tunnel.rundir.path)
        assert lists.source == "workstation" and lists.paths == (str(more),), lists
        assert [s.name for s in lists.servers] == ["sys-far"]
    finally:
        tunnel.down()


def test_ui_opens_a_system_list_server(centre: Any, workstation_lists: Path, display: str, tmp_path: Path) -> None:
    """hosts method, one server in the profile, three in the workstation's system list: ecflow_ui gets the list
    (ECFLOW_SYSTEM_SERVERS_LIST, the rewritten copy), its servers are in its server list as system servers, the
    tunnel carries them all (those the profile lacks joined it at `ui` start), and the two that exist load when
    the session opens them."""
    from ecflow_remote.tunnel.handle import Tunnel

    main, _ = write_lists(centre, workstation_lists)
    profile_path = one_server_profile(centre, tmp_path / "p.toml", "hosts", f'[ui]\nsystem_servers = ["{main}"]')
    own = tmp_path / "own"
    (own / "default.session").mkdir(parents=True)
    session = json.loads(user_session("sys-m1://lab/f1/hello"))
    session["window_0"]["tab_0"]["server"] = ["sys-m1", "sys-m2"]
    (own / "default.session" / "session.json").write_text(json.dumps(session))
    ui_log = tmp_path / "ui.log"
    tunnel = Tunnel(profile_path)
    try:
        tunnel.up()
        proc, config = launch_ui(centre, tunnel, display, own, ui_log)
        try:
            rows = {s.name: (s.host, s.port, s.system) for s in config.servers}
            assert rows["sys-m1"] == ("machine1", 4141, True) and rows["sys-far"] == ("machine7", 5555, True)
            assert rows["sys-m2"] == ("machine2", 3142, True)
            assert config.system.unreachable == ()
            # The session's selection on sys-m1 lands once sys-m1 (a server only the system list names) has loaded.
            wait_for(
                lambda: "sys-m1://lab/f1/hello" in ui_log.read_text(errors="replace") or proc.poll() is not None, 60
            )
            time.sleep(2)
            subprocess.run(["import", "-display", display, "-window", "root", str(tmp_path / "ui-system.png")])
            text = ui_log.read_text(errors="replace")
            assert proc.poll() is None, text[-3000:]
            assert "take paths from $ECFLOW_SYSTEM_SERVERS_LIST" in text, text[-3000:]
            assert re.search(r"loaded=\[lab\b", text) and "info=sys-m1://lab/f1/hello" in text, text[-3000:]
            # sys-m2 (machine2), which only the system list names, loads through the endpoint added for it.
            wait_for(lambda: loaded(ui_log, ["lab", "ops"], proc), 60, 0.5)
            assert re.search(r"loaded=\[?ops\b", ui_log.read_text(errors="replace")), text[-3000:]
            assert "sys-far machine7 5555" in text  # ecflow_ui read the rewritten list (include resolved)
        finally:
            stop_ui(proc)
    finally:
        tunnel.down()


# ------------------------------------------------------------------------------------------- ssh transfers

TRANSFER = "/usr/share/ecflow/etc/ecflow_ui_transfer_file.sh"


def sshd_log(centre: Any) -> Path:
    return Path(centre.base) / "sshd" / "machine1" / "sshd.log"


@pytest.mark.parametrize("method", ["local", "hosts", "socks"])
def test_ecflow_uis_transfer_script_fetches_the_server_log_through_the_tunnel(
    centre: Any, tunnel_up: Any, tmp_path: Path, method: str
) -> None:
    """ecflow_ui's own ecflow_ui_transfer_file.sh, run as ecflow_ui runs it for Server load and Timeline (the last
    N bytes of ECF_LOG; in its proxychains mode with a SOCKS port and localhost), inside `run`: the tunnel's ssh
    logs in to the workstation as the Centre account (its sshd says so) and brings the log's tail back."""
    tunnel = tunnel_up(method)
    spec = centre.server("machine1")
    log = centre.server_log(spec)
    target = tmp_path / "fetched"
    host = ["-p", "9050"] if method == "socks" else ["-h", "localhost" if method == "local" else spec.host]
    argv = [TRANSFER, "-m", "file", "-s", str(log), "-t", str(target), "-b", "last", "-v", "4000", "-u", "__USER__"]
    sshd = sshd_log(centre)
    offset = size(sshd)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        code = _run(tunnel, [*argv, *host], f)
    assert code == 0, out.read_text(errors="replace")
    fetched = target.read_bytes()
    # The server's log (it grows with the tunnel's health checks): what came is a piece of it, at most the tail asked.
    assert b"--ping" in fetched and fetched in log.read_bytes() and len(fetched) <= 4000, fetched[-500:]
    logins = new_text(sshd, offset)
    assert re.search(rf"Accepted publickey for {centre.centre_user} from", logins), logins


def _run(tunnel: Any, argv: list[str], out: Any) -> int:
    """`ecflow-remote run -- ARGV` in-process, its output to `out`."""
    from ecflow_remote import programs

    plan, files = tunnel.plan(), tunnel.files()
    env = programs.run_env(plan, None)
    programs.ssh_through_tunnel(tunnel, env)
    proc = programs.spawn(argv, plan, files, env, stdout=out, stderr=subprocess.STDOUT)
    return proc.wait(60)


@pytest.mark.parametrize("method", ["hosts", "local", "socks"])
def test_ui_server_load_and_timeline_fetch_the_server_log_by_ssh(
    centre: Any, tunnel_up: Any, display: str, tmp_path: Path, method: str
) -> None:
    """The real ecflow_ui, the servers' logs hidden from it (as at home): its Server load and Timeline panels run
    its transfer script (socks: in its proxychains mode), whose ssh is the tunnel's, and the workstation's sshd
    logs the Centre account's login for each."""
    tunnel = tunnel_up(method)
    own = tmp_path / "own"
    (own / "default.session").mkdir(parents=True)
    (own / "default.session" / "session.json").write_text(user_session("machine1://"))
    sshd = sshd_log(centre)
    ui_log = tmp_path / "ui.log"
    accepted = rf"Accepted publickey for {centre.centre_user} from"
    proc, _ = launch_ui(centre, tunnel, display, own, ui_log, hide=[str(centre.base / "ecf")])
    try:
        wait_for(lambda: loaded(ui_log, ["lab"], proc), 60, 0.5)
        assert proc.poll() is None, ui_log.read_text(errors="replace")[-3000:]
        time.sleep(2)  # the session's selection (the server) lands after the first sync
        # From here on, a login to the workstation can only be ecflow_ui's (`ui` read the system lists before).
        offset = size(sshd)
        # No window manager: the info panel's tabs for a server sit at fixed places; "Server load", then "Timeline".
        for name, x in (("server-load", "624"), ("timeline", "540")):
            before = size(sshd)
            xdotool(display, "mousemove", x, "366", "click", "1")
            assert wait_for(lambda b=before: re.search(accepted, new_text(sshd, b)) is not None, 30, 0.5), name
            time.sleep(2)
            shot(display, tmp_path / f"ui-{name}-{method}.png")
        assert proc.poll() is None, ui_log.read_text(errors="replace")[-3000:]
    finally:
        stop_ui(proc)
    logins = new_text(sshd, offset)
    assert len(re.findall(accepted, logins)) >= 2, logins


def shot(display: str, path: Path) -> None:
    subprocess.run(["import", "-display", display, "-window", "root", str(path)], timeout=30, check=False)
