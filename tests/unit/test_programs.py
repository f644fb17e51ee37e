"""programs.py's hints for a failed `run` (local method; ecflow_client given no server) and `up`'s moved ports."""

from __future__ import annotations

import pytest

from ecflow_remote import programs
from ecflow_remote.cli.tunnel import _moved
from ecflow_remote.plan import Endpoint, Plan

M1 = Endpoint("server", "m1", "machine1", 4141, "127.0.0.1", 39989)
M2 = Endpoint("server", "machine2", "machine2", 3142, "127.0.0.1", 3142)
L1 = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", 9316)
L2 = Endpoint("logserver", "logserver2:9316", "logserver2", 9316, "127.0.0.1", 40001)
M2B = Endpoint("server", "machine2b", "machine2", 3144, "127.0.0.1", 40002)
LOCAL = Plan("local", [M1, M2, M2B, L1, L2])


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["ecflow_client", "--host", "machine1", "--port", "4141", "--ping"], ["127.0.0.1 port 39989", "--server m1"]),
        (["ecflow_client", "--host=machine2", "--port=3142", "--ping"], ["(machine2:3142) is at 127.0.0.1 port 3142"]),
        # Two servers of one host: the one whose port is named (issue 21: 3144 was hinted as 3142's server).
        (
            ["ecflow_client", "--host", "machine2", "--port", "3144"],
            ["machine2b (machine2:3144) is at 127.0.0.1 port 40002"],
        ),
        (["env", "ECF_HOST=machine2", "ECF_PORT=3144", "ecflow_client"], ["server machine2b", "port 40002"]),
        (["env", "ECF_HOST=machine2", "ecflow_client"], ["server machine2 (", "server machine2b ("]),
        (["env", "ECF_HOST=machine1", "ecflow_client", "--ping"], ["port 39989"]),
        (["ecflow_client", "--host", "localhost", "--port", "39989", "--ping"], None),
        (["ls", "machine10"], None),
        (["ecflow_client", "--host", "logserver1"], None),  # log servers are not what ecflow_client asks
        (["ssh", "machine1", "hostname"], None),  # the tunnel's ssh reaches Centre hosts by name
        (["/usr/bin/scp", "machine2:/tmp/x", "."], None),
    ],
)
def test_local_hint(argv: list[str], words: list[str] | None) -> None:
    hint = programs.local_hint(LOCAL, argv)
    if words is None:
        assert hint is None
        return
    assert hint is not None and "\n" not in hint
    for word in words:
        assert word in hint, (word, hint)


def test_no_hint_where_the_names_are_real() -> None:
    hosts = Plan("hosts", [Endpoint("server", "m1", "machine1", 4141, "127.77.1.1", 4141)])
    assert programs.local_hint(hosts, ["ecflow_client", "--host", "machine1", "--port", "4141"]) is None


def test_a_port_moved_for_the_tunnels_own_log_server_says_so() -> None:
    """Two log servers on 9316 with the local method: the second moved because of the first, not "taken"."""
    assert _moved(LOCAL, L2) == "  (port 9316 here is logserver1:9316's)"
    assert _moved(LOCAL, M1) == "  (port 4141 was taken by another program)"
    assert _moved(LOCAL, M2) == "" and _moved(LOCAL, L1) == ""


@pytest.mark.parametrize(
    ("argv", "server", "environ", "hinted"),
    [
        (["ecflow_client", "--ping"], None, {}, True),
        (["/usr/bin/ecflow_client", "--ping"], None, {}, True),
        (["ecflow_client", "--ping"], "m1", {}, False),  # --server set ECF_HOST/ECF_PORT
        (["ecflow_client", "--ping"], None, {"ECF_HOST": "localhost"}, False),  # the user's own choice
        (["ecflow_client", "--host", "127.0.0.1", "--port", "39989", "--ping"], None, {}, False),
        (["ecflow_client", "--host=127.0.0.1", "--ping"], None, {}, False),
        (["env", "ECF_HOST=machine1", "ecflow_client", "--ping"], None, {}, False),
        (["python3", "script.py"], None, {}, False),
    ],
)
def test_ecflow_client_given_no_server_is_told_the_servers(
    argv: list[str], server: str | None, environ: dict[str, str], hinted: bool
) -> None:
    hint = programs.default_server_hint(LOCAL, argv, server, environ)
    if not hinted:
        assert hint is None
        return
    assert hint is not None and "\n" not in hint
    assert "localhost:3141" in hint and "--server NAME" in hint and "m1, machine2" in hint


def test_the_hint_never_names_the_other_server_of_the_host() -> None:
    hint = programs.local_hint(LOCAL, ["ecflow_client", "--host", "machine2", "--port", "3144", "--ping"])
    assert hint is not None and "port 3142" not in hint and "server machine2 " not in hint
