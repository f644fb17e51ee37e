"""`status`, `suites` and `output` through the tunnel (local and socks), against the simulated Centre."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from centre.centre import EcflowServerSpec, LogServerSpec

from ecflow_remote import output
from ecflow_remote.clients.ecflow import EcflowClient
from ecflow_remote.clients.logserver import AsyncLogServerClient
from ecflow_remote.errors import ServerError, TruncatedOutput

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "ecflow-remote")


def cli(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([CLI, "--profile", str(profile), *args], capture_output=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


@pytest.mark.parametrize("method", ["local", "socks"])
def test_status_suites_output(method: str, centre: Any, tunnel_up: Any) -> None:
    tunnel = tunnel_up(method)
    profile = tunnel.profile.path

    report = json.loads(cli(profile, "status", "--json").stdout)
    assert [s["reachable"] for s in report["servers"]] == [True, True], report
    assert all(s["version"].startswith("5.") and s["latency_ms"] > 0 for s in report["servers"])
    assert [lg["reachable"] for lg in report["logservers"]] == [True, True], report

    plain = cli(profile, "suites", "machine1").stdout.decode()
    assert "\x1b[" not in plain  # piped: no colour codes
    lines = plain.splitlines()
    assert lines[0] == "machine1  RUNNING"
    assert "      task hello  complete" in lines
    assert "      task fails  aborted" in lines
    assert "    family f2  queued suspended" in lines

    sub = json.loads(cli(profile, "suites", "machine2", "/ops/f1", "--json").stdout)
    assert sub["node"]["path"] == "/ops/f1"
    states = {c["name"]: c["state"] for c in sub["node"]["children"]}
    assert states["hello"] == "complete" and states["fails"] == "aborted"
    whole = json.loads(cli(profile, "suites", "machine2", "--json").stdout)
    f2 = next(n for n in whole["suites"][0]["children"] if n["name"] == "f2")
    assert f2["suspended"] is True

    # Each log server, through the tunnel (socks: through the proxy by its Centre name), byte for byte.
    for spec in centre.servers:
        node = f"/{spec.suite}/f1/hello"
        source = asyncio.run(output.locate(tunnel, spec.host, node))
        assert source.via_logserver and source.endpoint.host == spec.logserver
        assert (source.logserver_client().proxy is not None) == (method == "socks")
        got = cli(profile, "output", spec.host, node).stdout
        assert got == centre.jobout(spec).read_bytes()
        tail = cli(profile, "output", spec.host, node, "--tail", "3").stdout
        assert tail == b"".join(centre.jobout(spec).read_bytes().splitlines(keepends=True)[-3:])

    bad = cli(profile, "output", "machine1", "/lab/f1", check=False)
    assert bad.returncode == 1 and b"only tasks have job output" in bad.stderr
    unknown = cli(profile, "suites", "machine1", "/lab/nope", check=False)
    assert unknown.returncode == 1 and b"nope" in unknown.stderr


@pytest.mark.parametrize("method", ["local", "socks"])
def test_follow_streams_appended_output(method: str, centre: Any, tunnel_up: Any) -> None:
    tunnel = tunnel_up(method)
    spec = centre.server("machine1")
    jobout = centre.jobout(spec, "f1/long")
    marker = f"appended while following ({method})\n".encode()
    out = io.BytesIO()
    polls = 0

    def should_stop() -> bool:
        nonlocal polls
        polls += 1
        if polls == 1:
            with open(jobout, "ab") as f:  # the job writes more
                f.write(marker)
        return out.getvalue().endswith(marker) or polls > 50

    source = asyncio.run(output.locate(tunnel, "machine1", "/lab/f1/long"))
    asyncio.run(output.follow(source, out, every=0.2, should_stop=should_stop))
    assert out.getvalue() == jobout.read_bytes()


def test_follow_of_a_finished_task_ends(centre: Any, tunnel_up: Any) -> None:
    """`output --follow` of a complete or aborted task prints its output, says the task has finished and ends; a task
    that finishes while followed gets its last bytes and the same word; a missing output names the server as the
    profile does, not the tunnel's address for it."""
    tunnel = tunnel_up("local")
    profile = tunnel.profile.path
    spec = centre.server("machine1")
    for task, state in (("hello", "complete"), ("fails", "aborted")):
        done = cli(profile, "output", "machine1", f"/lab/f1/{task}", "--follow")
        assert done.stdout == centre.jobout(spec, f"f1/{task}").read_bytes()
        said = done.stderr.decode()
        assert f"/lab/f1/{task} has finished ({state}): that is all of its output, nothing to follow" in said, said

    # Located while it ran (the state as it was then), finished since: the next round reads the rest and ends, through
    # the log server and through the ecFlow server alike.
    for via_logserver in (True, False):
        source = asyncio.run(output.locate(tunnel, "machine1", "/lab/f1/hello"))
        assert source.state == "complete" and source.via_logserver
        source.state = "active"
        if not via_logserver:
            source.endpoint = None
        out, notes = io.BytesIO(), []
        asyncio.run(asyncio.wait_for(output.follow(source, out, every=0.1, note=notes.append), 20))
        assert out.getvalue() == centre.jobout(spec).read_bytes()
        assert notes == ["/lab/f1/hello has finished (complete): its output ends here"]

    # /lab/f2/later never ran: no output anywhere.
    missing = cli(profile, "output", "machine1", "/lab/f2/later", check=False)
    said = missing.stderr.decode()
    assert missing.returncode == 1 and "ecFlow server machine1 answered with an error" in said, said
    host, port = tunnel.endpoint("machine1")
    assert f"{host}:{port}" not in said


def test_truncated_transfer_is_an_error(centre: Any) -> None:
    from centre import howto

    big = centre.outputs_dir / "lab" / "big.1"
    big.write_bytes(os.urandom(1024) * (48 * 1024))  # 48 MiB
    try:
        with howto.local_forward(centre) as raw:
            host, port = raw.endpoint("logserver1", 9316)
            client = AsyncLogServerClient(host, port)
            assert raw.proc is not None
            pgid = raw.proc.pid

            def cut(received: int, total: int | None) -> None:
                if received > 2 * 1024 * 1024:
                    os.killpg(pgid, signal.SIGKILL)

            sink = io.BytesIO()
            with pytest.raises(TruncatedOutput, match=r"got \d+ of 50331648 bytes|dropped the connection"):
                asyncio.run(client.copy_to(str(big), sink, progress=cut))
    finally:
        big.unlink(missing_ok=True)


def test_server_cut_output_is_an_error_not_partial() -> None:
    from ecflow_remote.clients.ecflow import commands

    text = "a\nb\n" + f"{commands.FILE_TRUNCATED_MARKER}7. Truncated from the end of the file <<<<<<<<<\n"
    assert commands.split_file_truncation(text, 7) == ("a\nb\n", True)
    assert commands.split_file_truncation("a\nb\n", 7) == ("a\nb\n", False)
    assert output.last_lines(b"1\n2\n3\n", 2) == b"2\n3\n"
    assert output.last_lines(b"1\n2\n3", 2) == b"2\n3"
    assert output.last_lines(b"1\n", 5) == b"1\n"


def test_white_listed_server(make_centre: Any, tunnel_up: Any) -> None:
    from centre import howto

    centre = make_centre(
        servers=(EcflowServerSpec("machine1", 4141, "lab", "logserver1", white_list=("user1",)),),
        logservers=(LogServerSpec("logserver1"),),
    )
    with howto.local_forward(centre) as raw:
        host, port = raw.endpoint("machine1", 4141)
        allowed = EcflowClient(host, port, user="user1")
        assert allowed.ping() > 0
        assert [s.name for s in allowed.get_defs().suites] == ["lab"]
        # Not "root": the Centre's ecflow_server runs as root, and ecFlow always admits the user running it.
        with pytest.raises(ServerError) as refused:
            EcflowClient(host, port, user="mallory").ping()
        # The server's own words, verbatim.
        assert refused.value.server_text == "[ authentication failed ] User 'mallory' is not allowed any access."

    # Through the tool: the profile's ecflow_user is the one sent.
    tunnel = tunnel_up("local", centre, ecflow_user="user1")
    assert "task hello  complete" in cli(tunnel.profile.path, "suites", "machine1").stdout.decode()
    report = json.loads(cli(tunnel.profile.path, "status", "--json").stdout)
    assert report["servers"][0]["reachable"] is True
    # Another user in the same profile, with the tunnel still up (the CLI reads the profile on each call).
    path = tunnel.profile.path
    path.write_text(path.read_text().replace('ecflow_user = "user1"', 'ecflow_user = "mallory"'))
    denied = cli(path, "suites", "machine1", check=False)
    assert denied.returncode == 1
    assert b"[ authentication failed ] User 'mallory' is not allowed any access." in denied.stderr
    report = json.loads(cli(path, "status", "--json").stdout)
    assert report["servers"][0]["reachable"] is False
    assert "User 'mallory' is not allowed any access" in report["servers"][0]["error"]
