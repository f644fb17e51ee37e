"""output.py's pure parts: the last lines as `tail -n` gives them, and which profile log server serves a task."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ecflow_remote import output
from ecflow_remote.net import same_host
from ecflow_remote.plan import Endpoint

SAMPLES = [
    b"",
    b"\n",
    b"\n\n\n",
    b"one",
    b"one\n",
    b"one\ntwo",
    b"one\ntwo\n",
    b"one\n\ntwo\n\n",
    b"a\nb\nc\nd\ne\n",
    b"a\nb\nc\nd\ne",
    b"\xff\xfe binary \x00\nline\r\nend",
]


@pytest.mark.skipif(shutil.which("tail") is None, reason="needs coreutils' tail as the reference")
@pytest.mark.parametrize("data", SAMPLES)
def test_last_lines_is_tail_n(data: bytes) -> None:
    for n in range(0, 7):
        expected = subprocess.run(["tail", "-n", str(n)], input=data, capture_output=True, check=True).stdout
        assert output.last_lines(data, n) == expected, (data, n)


def test_last_lines_of_a_big_output_keeps_only_the_end() -> None:
    data = b"".join(b"line %d\n" % i for i in range(100_000))
    assert output.last_lines(data, 2) == b"line 99998\nline 99999\n"
    assert output.last_lines(data, 10**6) == data
    assert output.last_lines(data, -1) == b""


@pytest.mark.parametrize(
    ("loghost", "profile_host", "same"),
    [
        ("logserver1", "logserver1", True),
        ("logserver1.centre.int", "logserver1", True),  # ECF_LOGHOST fully qualified, the profile short
        ("logserver1", "LOGSERVER1.centre.int.", True),
        ("logserver1", "logserver2", False),
        ("logserver1x", "logserver1", False),
    ],
)
def test_log_host_names_match_short_or_qualified(loghost: str, profile_host: str, same: bool) -> None:
    assert same_host(loghost, profile_host) is same


def test_source_says_where_it_reads_from() -> None:
    endpoint = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", 40001)
    via_server = output.Source("m1", "/s/t", "/out/s/t.1", ("logserver1", 9316), None, None)  # type: ignore[arg-type]
    assert not via_server.via_logserver and via_server.describe() == "ecFlow server m1"
    via_logs = output.Source("m1", "/s/t", "/out/s/t.1", ("logserver1", 9316), endpoint, None)  # type: ignore[arg-type]
    assert via_logs.via_logserver and via_logs.describe() == "log server logserver1:9316"


class _Server:
    """An ecFlow server's answers for one task, as `follow` asks them: its state (None: not answering) and its
    output, one pair per round."""

    def __init__(self, rounds: list[tuple[str | None, str]]) -> None:
        self.rounds = rounds
        self.asked = 0

    async def get_node(self, path: str) -> object:
        from types import SimpleNamespace

        from ecflow_remote.errors import ServerDown

        state = self.rounds[min(self.asked, len(self.rounds) - 1)][0]
        if state is None:
            raise ServerDown("m1", "get", [path], "not answering")
        return SimpleNamespace(state=state)

    async def file(self, path: str, kind: str = "jobout", max_lines: int | None = None) -> tuple[str, bool]:
        text = self.rounds[min(self.asked, len(self.rounds) - 1)][1]
        self.asked += 1
        return text, False


def test_follow_goes_on_while_the_task_runs_and_ends_when_it_has_finished() -> None:
    """A moment without an answer from the server is not the end; a finished state is, after the last bytes."""
    import asyncio
    import io

    server = _Server(
        [("active", "a\n"), ("active", "a\n"), (None, "a\nb\n"), ("active", "a\nb\n"), ("aborted", "a\nb\nc\n")]
    )
    source = output.Source("m1", "/s/t", "/out/s/t.1", None, None, server, state="active")  # type: ignore[arg-type]
    out, notes = io.BytesIO(), []
    asyncio.run(asyncio.wait_for(output.follow(source, out, every=0.01, note=notes.append), 5))
    assert out.getvalue() == b"a\nb\nc\n"
    assert notes == ["/s/t has finished (aborted): its output ends here"]

    # Finished before `follow` began: the output once, and the word that nothing more comes.
    server = _Server([("complete", "done\n")])
    source = output.Source("m1", "/s/t", "/out/s/t.1", None, None, server, state="complete")  # type: ignore[arg-type]
    out, notes = io.BytesIO(), []
    asyncio.run(asyncio.wait_for(output.follow(source, out, every=0.01, note=notes.append), 5))
    assert out.getvalue() == b"done\n" and server.asked == 1
    assert notes == ["/s/t has finished (complete): that is all of its output, nothing to follow"]
