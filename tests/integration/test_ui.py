"""`ecflow-remote ui`: the real ecflow_ui under Xvfb, through the tunnel, connected to both Centre servers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from centre.centre import EcflowServerSpec
from tests.integration.centres import PASSWORD, PASSWORD_ENV, new_text, size
from tests.integration.procs import all_cmdlines
from tests.integration.profiles import write_profile

from ecflow_remote.tunnel.rundir import wait_for
from ecflow_remote.uiservers import read_servers_txt

UI_HOST = "ecfr-ui-test"  # ecflow_ui's own host name: its requests are told apart in the servers' logs


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private X server; killed at the end whatever happens."""
    for tool in ("Xvfb", "xdotool", "import"):
        if not any(os.access(Path(d) / tool, os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            pytest.skip(f"{tool} missing: run scripts/install-deps")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()
        assert number.isdigit(), "Xvfb did not report its display"
        yield f":{number}"
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(5)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait()


def stop_ui(proc: subprocess.Popen[bytes]) -> None:
    """Stop ecflow_ui (child first, as its launch script wants), then anything left in its process group."""
    from ecflow_remote.ui import start as ui

    ui.stop(proc)
    # Nothing of the group may outlive the test (an ecflow_ui.x reparented to init would hold the display).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def launch_ui(
    centre: Any,
    tunnel: Any,
    display: str,
    own: Path,
    ui_log: Path,
    config_dir: Path | None = None,
    hide: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], Any]:
    """ecflow_ui through the tunnel with `own` as the user's config dir, logging to ui_log; its config dir is
    `config_dir` (default: ecflow_ui beside ui_log, standing for the profile's persistent one); `hide`: more
    directories the UI must not see; `env`: more of its environment."""
    from ecflow_remote.ui import start as ui

    with open(ui_log, "wb") as out:
        return ui.launch(
            tunnel,
            ["-log"],
            env={**os.environ, "DISPLAY": display, **(env or {})},
            user_dir=own,
            config_dir=config_dir or ui_log.parent / "ecflow_ui",
            # The job outputs exist on this machine too (one machine plays the Centre): hidden from the UI, so
            # what it shows can only have come through the log server.
            hide=[str(centre.outputs_dir), *(hide or [])],
            hostname=UI_HOST,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.parametrize("method", ["hosts", "local", "socks"])
def test_ui_connects_to_every_server(centre: Any, tunnel_up: Any, display: str, tmp_path: Path, method: str) -> None:

    tunnel = tunnel_up(method)
    logs = {spec.host: centre.server_log(spec) for spec in centre.servers}
    offsets = {host: size(path) for host, path in logs.items()}
    ui_log = tmp_path / "ui.log"
    own = tmp_path / "own-config"  # the "user's" ecflow_ui config: must stay untouched
    own.mkdir()
    own_servers = "#Name Host Port Favourite System Ssl user\nelsewhere,example.invalid,1,0,0,0,\n"
    (own / "servers.txt").write_text(own_servers)
    proc, config = launch_ui(centre, tunnel, display, own, ui_log)
    try:
        assert config.path == tmp_path / "ecflow_ui" and config.seeded
        rows = {s.name: s for s in config.servers}
        assert set(rows) == {"machine1", "machine2", "elsewhere"}

        def connected() -> bool:
            text = ui_log.read_text(errors="replace")
            return (
                all(re.search(rf"loaded=\[?{spec.suite}\b", text) for spec in centre.servers) or proc.poll() is not None
            )

        wait_for(connected, 60, 0.5)
        time.sleep(1)  # let the first repaint land before the screenshot (not asserted)
        subprocess.run(
            ["import", "-display", display, "-window", "root", str(tmp_path / f"ui-{method}.png")], timeout=30
        )
        text = ui_log.read_text(errors="replace")
        assert proc.poll() is None, f"ecflow_ui exited: {text[-3000:]}"
        if method == "socks":
            # ecflow_ui's own proxychains mode (-pc4), with the tunnel's private config.
            assert "command: proxychains4" in text
        for spec in centre.servers:
            assert re.search(rf"loaded=\[?{spec.suite}\b", text), f"no loaded= for {spec.host}: {text[-3000:]}"
            requests = new_text(logs[spec.host], offsets[spec.host])
            # The servers' own logs: ecflow_ui (by its host name) synced the whole definition.
            assert re.search(rf"--sync_full\S*\s*:\S+@{UI_HOST}", requests), f"{spec.host}: {requests[-2000:]}"
    finally:
        stop_ui(proc)
    assert (own / "servers.txt").read_text() == own_servers and not (own / "default.session").exists()


def user_session(selection: str) -> str:
    """The user's own session (as ecflow_ui saves one): a tree and an info panel, with a node selected."""
    import json

    from ecflow_remote.ui.session import SESSION_TEMPLATE

    session = json.loads(SESSION_TEMPLATE.read_text())
    tab = session["window_0"]["tab_0"]
    tab["server"] = []
    tab["widget_0"]["selection"] = selection
    tab["widget_1"]["selection"] = selection
    return json.dumps(session)


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=10)


# local: only the log server that kept port 9316 on 127.0.0.1 is reachable by name (the how-to's limit).
@pytest.mark.parametrize(("method", "server"), [("hosts", 0), ("hosts", 1), ("socks", 0), ("socks", 1), ("local", 0)])
def test_ui_reads_job_output_through_the_log_server(
    centre: Any, tunnel_up: Any, display: str, tmp_path: Path, method: str, server: int
) -> None:

    spec = centre.servers[server]
    logserver = next(ls for ls in centre.logservers if ls.host == spec.logserver)
    tunnel = tunnel_up(method)
    lsl = centre.logserver_log(logserver)
    offset = size(lsl)
    own = tmp_path / "own-config"
    (own / "default.session").mkdir(parents=True)
    (own / "default.session" / "session.json").write_text(user_session(f"{spec.host}://{spec.suite}/f1/hello"))
    ui_log = tmp_path / "ui.log"
    proc, config = launch_ui(centre, tunnel, display, own, ui_log)
    try:
        assert config.session == "extended"
        wait_for(lambda: f"loaded=[{spec.suite}" in ui_log.read_text(errors="replace") or proc.poll() is not None, 60)
        assert proc.poll() is None, ui_log.read_text(errors="replace")[-3000:]
        time.sleep(2)  # the session's selection lands after the first sync (not asserted)
        # No window manager: the main window sits at 0,0 and its info panel's "Output" tab at a fixed place.
        xdotool(display, "mousemove", "333", "366", "click", "1")
        jobout = str(centre.jobout(spec, "f1/hello"))
        wait_for(lambda: jobout in new_text(lsl, offset), 30, 0.5)
        time.sleep(1)
        subprocess.run(
            ["import", "-display", display, "-window", "root", str(tmp_path / f"ui-output-{method}-{spec.host}.png")],
            timeout=30,
        )
        served = new_text(lsl, offset)
        assert re.search(rf"getf\s+{re.escape(jobout)}", served), f"log server saw no getf: {served[-2000:]}"
    finally:
        stop_ui(proc)


def test_cli_two_uis_at_once_share_the_profiles_config_dir_which_stays(
    centre: Any, tunnel_up: Any, display: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `ecflow-remote ui` of one profile at once: both load every server from the profile's persistent config
    dir (in the user's data dir), each stops with its CLI, and the dir stays; the user's own is never written."""
    from ecflow_remote.ui.confdir import config_dir_for

    tunnel = tunnel_up("hosts")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    confd = config_dir_for(tunnel.profile.path)
    own = tmp_path / "own-config"  # stands for ~/.ecflow_ui_v5 (via ECFLOWUI_CONFIG_DIR): copied, not used
    own.mkdir()
    env = {**os.environ, "DISPLAY": display, "ECFLOWUI_CONFIG_DIR": str(own)}
    outs = [tmp_path / f"cli{i}.out" for i in range(2)]
    clis = []
    for out in outs:
        with open(out, "wb") as f:
            clis.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ecflow_remote", "--profile", str(tunnel.profile.path), "ui", "--", "-log"],
                    env=env,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        for cli, out in zip(clis, outs, strict=True):
            wait_for(
                lambda c=cli, o=out: o.read_text(errors="replace").count("loaded=[") >= 2 or c.poll() is not None,
                90,
                0.5,
            )
            text = out.read_text(errors="replace")
            assert cli.poll() is None, text[-3000:]
            assert f"config dir: {confd}" in text and all(f"loaded=[{s.suite}" in text for s in centre.servers)
        # One of the two made it (a copy of the user's), the other found it made.
        texts = [out.read_text(errors="replace") for out in outs]
        assert sum("(new: a copy of" in t for t in texts) == 1, texts
        assert (confd / "servers.txt").exists() and list(own.iterdir()) == []
        for cli in clis:
            cli.send_signal(signal.SIGTERM)
            assert cli.wait(20) == 130
            # The UI went with it: no process of the CLI's group is left.
            assert wait_for(lambda pid=cli.pid: not _group_alive(pid), 10)
        assert {s.name for s in read_servers_txt(confd / "servers.txt")} == {s.host for s in centre.servers}
    finally:
        for cli in clis:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ui_presents_each_servers_white_listed_name(white_list_centre: Any, display: str, tmp_path: Path) -> None:
    """Issue 5 with ecflow_ui: white-listed servers wanting different Centre names both load, each server's log
    shows the UI's requests under its own configured name (never the laptop's), and a name not on a server's white
    list is still refused."""
    from ecflow_remote.access import relay
    from ecflow_remote.tunnel.handle import Tunnel

    c = white_list_centre
    m1, m2 = c.servers
    me = relay.login_name()
    assert me not in ("user1", "user2")

    def run_ui(users: dict[str, str], until: Any, all_answer: bool = True) -> tuple[str, dict[str, str]]:
        """ecflow_ui through a tunnel whose profile gives each server the name in `users`, until `until(ui_log,
        server_logs)` holds; the UI's log and what each server logged meanwhile."""
        profile = write_profile(c, tmp_path / "p.toml", {s: {"ecflow_user": u} for s, u in users.items()})
        tunnel = Tunnel(profile)
        logs = {spec.host: c.server_log(spec) for spec in c.servers}
        offsets = {host: size(path) for host, path in logs.items()}
        ui_log = tmp_path / "ui.log"
        own = tmp_path / "own-config"
        own.mkdir(exist_ok=True)
        tunnel.up(require_all=all_answer)
        try:
            proc, _ = launch_ui(c, tunnel, display, own, ui_log)
            try:

                def seen() -> tuple[str, dict[str, str]]:
                    return ui_log.read_text(errors="replace"), {h: new_text(p, offsets[h]) for h, p in logs.items()}

                wait_for(lambda: until(*seen()) or proc.poll() is not None, 40, 0.5)
                text, requests = seen()
                assert proc.poll() is None, f"ecflow_ui exited: {text[-3000:]}"
                return text, requests
            finally:
                stop_ui(proc)
        finally:
            tunnel.down()

    def loaded(text: str, spec: EcflowServerSpec) -> bool:
        return re.search(rf"loaded=\[?{spec.suite}\b", text) is not None

    # Each server's own name: both load, and each server saw the UI's sync under that name, never the laptop's.
    names = {m1.host: "user1", m2.host: "user2"}

    def synced(text: str, requests: dict[str, str]) -> bool:
        return all(
            loaded(text, s) and re.search(rf"--sync_full\S*\s*:{names[s.host]}@{UI_HOST}", requests[s.host])
            for s in (m1, m2)
        )

    text, requests = run_ui(names, synced)
    assert synced(text, requests), f"{text[-3000:]}\n{requests}"
    for spec in (m1, m2):
        assert f":{me}@" not in requests[spec.host], requests[spec.host][-2000:]

    # A name that is not on machine2's white list (machine1 keeps user1): machine2 refuses the UI's requests under
    # that name, and the UI loads nothing from it.
    def refused(text: str, requests: dict[str, str]) -> bool:
        refusal = rf":someone@{UI_HOST}\nERR:\S+ \S+\] \[ authentication failed \] User 'someone' is not allowed"
        return loaded(text, m1) and re.search(refusal, requests[m2.host]) is not None

    # (machine2 refuses the tunnel's own pings too: up waits only for machine1.)
    text, requests = run_ui({m1.host: "user1", m2.host: "someone"}, refused, all_answer=False)
    assert refused(text, requests), f"{text[-3000:]}\n{requests}"
    assert not loaded(text, m2) and f":{me}@" not in requests[m2.host], requests[m2.host][-2000:]


def test_ui_custom_user_with_password_beside_a_plain_server(
    password_centre: Any, display: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ecflow_ui 5.9 would apply ECF_USER to every server, and a custom user of servers.txt's user column wants a
    password file: the UI gets neither. It sends its login name, the password server's relay presents the custom
    user and password, the plain one gets the login name (an inherited ECF_USER must not reach it), both load, and
    the password is in no process's arguments or environment (the UI's included) and no file of the run dir."""
    from ecflow_remote.access import relay
    from ecflow_remote.tunnel.handle import Tunnel

    c = password_centre
    m1, m2 = c.servers
    profile = write_profile(
        c, tmp_path / "p.toml", {"machine1": {"custom_user": "bob", "password": f"env:{PASSWORD_ENV}"}}
    )
    tunnel = Tunnel(profile)
    logs = {spec.host: c.server_log(spec) for spec in (m1, m2)}
    offsets = {host: size(path) for host, path in logs.items()}
    ui_log = tmp_path / "ui.log"
    own = tmp_path / "own-config"
    own.mkdir()
    tunnel.up()
    try:
        # The user's own ECF_USER: ecflow_ui would make it every server's custom user (machine2 has no password
        # for it, and would get no request at all).
        monkeypatch.setenv("ECF_USER", "intruder")
        proc, config = launch_ui(c, tunnel, display, own, ui_log)
        try:
            assert {s.name: s.user for s in config.servers} == {"machine1": "", "machine2": ""}
            me = relay.login_name()
            users = {m1.host: "bob", m2.host: me}

            def seen() -> tuple[str, dict[str, str]]:
                return ui_log.read_text(errors="replace"), {h: new_text(p, offsets[h]) for h, p in logs.items()}

            def synced(text: str, requests: dict[str, str]) -> bool:
                return all(
                    re.search(rf"loaded=\[?{s.suite}\b", text)
                    and re.search(rf"--sync_full\S*\s*:{users[s.host]}@{UI_HOST}", requests[s.host])
                    for s in (m1, m2)
                )

            wait_for(lambda: synced(*seen()) or proc.poll() is not None, 40, 0.5)
            text, requests = seen()
            assert proc.poll() is None, f"ecflow_ui exited: {text[-3000:]}"
            assert synced(text, requests), f"{text[-3000:]}\n{requests}"
            assert ":intruder@" not in requests[m2.host] and ":intruder@" not in requests[m1.host]
            # While it runs: not in any process's arguments, nor in the UI's environment (no password variable, no
            # password file), nor in any file of the run dir (the UI's config dir included), nor in its output.
            assert PASSWORD.encode() not in all_cmdlines()
            held = Path(f"/proc/{proc.pid}/environ").read_bytes()
            clean = PASSWORD.encode() not in held and f"{PASSWORD_ENV}=".encode() not in held
            assert clean and b"ECF_CUSTOM_PASSWD=" not in held and b"ECF_USER=" not in held
            for f in tunnel.rundir.path.rglob("*"):
                if f.is_file():
                    assert PASSWORD.encode() not in f.read_bytes(), f
            assert PASSWORD not in ui_log.read_text(errors="replace")
        finally:
            stop_ui(proc)
    finally:
        tunnel.down()
