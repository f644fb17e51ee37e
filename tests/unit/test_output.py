"""output.py's pure parts: the last lines as `tail -n` gives them, and which profile log server serves a task."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ecflow_remote import output
from ecflow_remote.plan import Endpoint
from ecflow_remote.tunnel.clients import same_host

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
