"""The panels' ecFlow requests through a real tunnel against ecflow_server 5.9.2 in the simulated Centre, each
compared with what the real ecflow_client (or python3-ecflow) answers at the Centre."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient
from ecflow_remote.errors import ServerError
from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration

SUITE = "panels"
# `sleeps` stays active long enough for a second --init of it to be a zombie; `edited` is submitted after an edit.
SCRIPTS = {
    "sleeps": "%include <head.h>\necho 'sleeping %ECF_NAME%'\nsleep 12\n%include <tail.h>\n",
    "edited": "%manual\nWhat edited does, for the Manual panel.\n%end\n%include <head.h>\n"
    "echo 'as written %GREETING%'\n%include <tail.h>\n",
}


def panels_def(ecf_home: Path, out: Path) -> str:
    return f"""\
suite {SUITE}
  edit ECF_HOME '{ecf_home}'
  edit ECF_INCLUDE '{ecf_home}/include'
  edit ECF_OUT '{out}'
  edit ECF_TRIES '1'
  edit GREETING 'hello'
  task edited
    defstatus suspended
  task sleeps
    defstatus suspended
  task waits
    defstatus suspended
    trigger edited == complete
endsuite
"""


@pytest.fixture
def panels_suite(centre: Any) -> Iterator[Any]:
    """The suite above on machine1 (its own, so the other tests' suites are untouched), deleted at the end."""
    spec = centre.server("machine1")
    home, out = centre.ecf_home(spec), centre.outputs_dir
    (home / SUITE).mkdir(exist_ok=True)
    (out / SUITE).mkdir(exist_ok=True)
    for name, text in SCRIPTS.items():
        (home / SUITE / f"{name}.ecf").write_text(text)
    definition = home / f"{SUITE}.def"
    definition.write_text(panels_def(home, out))
    for path in (home / SUITE, out / SUITE, definition, *(home / SUITE).iterdir()):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    centre.ecflow_client(spec.host, spec.port, [f"--load={definition}"])
    centre.ecflow_client(spec.host, spec.port, [f"--begin={SUITE}"])
    try:
        yield spec
    finally:
        # A job still running when its suite goes would come back as a zombie in the next test: let it end.
        busy = ("active", "submitted")
        wait_for(lambda: all(state(centre, spec, f"/{SUITE}/{t}") not in busy for t in SCRIPTS), 30)
        centre.ecflow_client(spec.host, spec.port, ["--delete=force", "yes", f"/{SUITE}"], check=False)


def real(centre: Any, spec: Any, *args: str, check: bool = True) -> str:
    return str(centre.ecflow_client(spec.host, spec.port, list(args), check=check).stdout)


def state(centre: Any, spec: Any, path: str) -> str:
    return real(centre, spec, "--query", "state", path).strip()


def variable_by_python3_ecflow(centre: Any, spec: Any, path: str, name: str) -> str | None:
    code = (
        f"import ecflow\nc = ecflow.Client({spec.host!r}, {spec.port})\nc.sync_local()\n"
        f"v = c.get_defs().find_abs_node({path!r}).find_variable({name!r})\n"
        "print('<none>' if v.empty() else 'value=' + v.value())"
    )
    last = centre.python_in(spec.host, code).strip().splitlines()[-1]
    return None if last == "<none>" else last.removeprefix("value=")


def make_zombie(centre: Any, spec: Any, path: str, pid: str) -> None:
    """A second `--init` of the running job at `path` (its password, another pid), as a job started twice makes."""
    password = re.search(r"ECF_PASS=(\S+)", (centre.ecf_home(spec) / f"{path.lstrip('/')}.job1").read_text())
    assert password is not None
    env = [f"ECF_HOST={spec.host}", f"ECF_PORT={spec.port}", f"ECF_NAME={path}", f"ECF_PASS={password[1]}"]
    env += ["ECF_TRYNO=1", f"ECF_RID={pid}", "ECF_TIMEOUT=4", "ECF_ZOMBIE_TIMEOUT=4"]
    # The server blocks the zombie's client (its default action): cut it off once the server has it.
    centre.exec(spec.host, ["timeout", "5", "env", *env, "ecflow_client", f"--init={pid}"], check=False)


def test_files_log_history_variables_edit_submit_and_zombies(centre: Any, tunnel_up: Any, panels_suite: Any) -> None:
    spec = panels_suite
    client = EcflowClient(*tunnel_up("local").endpoint("machine1"))
    home = centre.ecf_home(spec)
    edited, sleeps = f"/{SUITE}/edited", f"/{SUITE}/sleeps"

    # Script and manual: what the server reads, as ecflow_client --file shows it.
    script, cut = client.file(edited, "script")
    assert not cut and script == (home / SUITE / "edited.ecf").read_text()
    assert script.rstrip("\n") == real(centre, spec, f"--file={edited}", "script").rstrip("\n")
    manual, _ = client.file(edited, "manual")
    assert "What edited does" in manual
    assert manual.rstrip("\n") == real(centre, spec, f"--file={edited}", "manual").rstrip("\n")

    # Edit and pre-process (includes expanded): byte for byte what ecflow_client prints (it adds one newline).
    assert client.edit_script(edited) + "\n" == real(centre, spec, f"--edit_script={edited}", "edit")
    assert client.preprocess(edited) + "\n" == real(centre, spec, f"--edit_script={edited}", "pre_process")
    assert "ecflow_client --init=$$" in client.preprocess(edited)  # head.h included

    # Variables: add, change, delete through alter; read back with python3-ecflow at the Centre.
    client.alter_variable("add", edited, "PANEL_VAR", "two words")
    assert variable_by_python3_ecflow(centre, spec, edited, "PANEL_VAR") == "two words"
    client.alter_variable("change", edited, "PANEL_VAR", "changed")
    assert variable_by_python3_ecflow(centre, spec, edited, "PANEL_VAR") == "changed"
    client.alter_variable("delete", edited, "PANEL_VAR")
    assert variable_by_python3_ecflow(centre, spec, edited, "PANEL_VAR") is None
    with pytest.raises(ServerError, match="Could not find variable NOPE"):
        client.alter_variable("change", edited, "NOPE", "x")

    # Node log (edit history): the same lines as ecflow_client --edit_history, our three alters in it.
    history = client.edit_history(edited)
    assert history == real(centre, spec, f"--edit_history={edited}").splitlines()
    assert [h.split("] ", 1)[1].split(" :")[0] for h in history[-3:]] == [
        f"--alter add variable PANEL_VAR two words {edited}",
        f"--alter change variable PANEL_VAR changed {edited}",
        f"--alter delete variable PANEL_VAR {edited}",
    ]

    # Server log: the server's own log file's last lines, ours last.
    lines = client.server_log(20).splitlines()
    assert len(lines) == 20 and "--log=get 20" in lines[-1]
    log_file = centre.server_log(spec).read_text().splitlines()
    assert lines[:-1] == log_file[log_file.index(lines[0]) :][:19]

    # Submit after an edit: the edited text and its %comment variables run as the job.
    text = client.edit_script(edited).replace("GREETING = hello", "GREETING = edited-at-home")
    text = text.replace("echo 'as written", "echo 'after the edit")
    client.submit(edited, text)
    assert wait_for(lambda: state(centre, spec, edited) == "complete", 30)
    job, _ = client.file(edited, "job")
    assert "echo 'after the edit edited-at-home'" in job
    assert job == (home / SUITE / "edited.job1").read_text()
    jobout, _ = client.file(edited, "jobout")
    assert "after the edit edited-at-home" in jobout

    # Zombies: a second --init of a running job (same password, another pid) is one; listed as ecflow_client
    # lists it, then removed.
    real(centre, spec, f"--resume={sleeps}")
    assert wait_for(lambda: state(centre, spec, sleeps) == "active", 30)
    make_zombie(centre, spec, sleeps, "99999")
    zombies = [z for z in client.zombies() if z.path == sleeps]
    assert [(z.type, z.pid, z.child_cmd, z.try_no) for z in zombies] == [("ecf_pid", "99999", "init", 1)]
    listed = [line.split() for line in real(centre, spec, "--zombie_get").splitlines()[1:] if line.strip()]
    assert [row[:2] + row[4:8] for row in listed if row[0] == sleeps] == [
        [sleeps, "ecf_pid", "99999", "1", zombies[0].user_action, "init"]
    ]
    # Job status while it runs: the server runs ECF_STATUS_CMD (its default: `ps` of the job), read back.
    client.status_command(sleeps)

    def stat() -> str:
        try:
            return client.file(sleeps, "stat")[0]
        except ServerError:
            return ""

    assert wait_for(lambda: "sleeps.job1" in stat(), 15), stat()
    assert stat().rstrip("\n") == real(centre, spec, f"--file={sleeps}", "stat").rstrip("\n")
    client.zombie_action("remove", sleeps)
    assert [z for z in client.zombies() if z.path == sleeps] == []
    assert wait_for(lambda: state(centre, spec, sleeps) == "complete", 30)


def test_a_watch_of_chosen_suites_has_its_own_client_handle(centre: Any, tunnel_up: Any, panels_suite: Any) -> None:
    spec = panels_suite
    client = AsyncEcflowClient(*tunnel_up("local").endpoint("machine1"))
    task = f"/{SUITE}/edited"

    def handles() -> list[list[str]]:
        """[handle, suites…] of each client handle: `--ch_suites` prints a header `User handle suites`, then a line
        per handle, the user named on a user's first line only."""
        lines = real(centre, spec, "--ch_suites").splitlines()
        heads = [x.split()[:1] for x in lines]
        if ["User"] not in heads:
            return []  # no handle at all: no table
        rows = [line.split() for line in lines[heads.index(["User"]) + 1 :] if line.strip()]
        return [row if row[0].isdigit() else row[1:] for row in rows]

    async def run() -> tuple[list[str], list[str], list[list[str]], bool]:
        names = await client.suites()
        async with client.watch(0.2, suites=[SUITE]) as w:
            registered = handles()
            shown = [s.name for s in w.defs.suites]
            await client.node_action("resume", task)
            seen = False
            for _ in range(50):
                update = await w.poll()
                if any(c.path == task and c.what == "suspended" for c in update.changes):
                    seen = True
                    break
                await asyncio.sleep(0.2)
        return names, shown, registered, seen

    names, shown, registered, seen = asyncio.run(run())
    assert {"lab", SUITE} <= set(names)
    assert shown == [SUITE]  # the handle's suites only
    assert [h[1:] for h in registered] == [[SUITE]]
    assert seen  # a change in the chosen suite arrives through the handle
    assert handles() == []  # dropped when the watch ends
    real(centre, spec, f"--suspend={task}")
