"""The NET definition parser and variable inheritance, on text captured from a real ecflow_server 5.9.2."""

from __future__ import annotations

import pytest
from tests.unit.samples import DATA

from ecflow_remote.clients.ecflow import Defs, parse_defs, parse_node
from ecflow_remote.clients.ecflow.client import AsyncEcflowClient
from ecflow_remote.errors import DefsParseError, UnknownNode


@pytest.fixture(scope="module")
def defs() -> Defs:
    return parse_defs((DATA / "defs_5.9.2.net").read_text())


def test_tree_paths_kinds_and_order(defs: Defs) -> None:
    assert [(n.path, n.kind) for n in defs] == [
        ("/lab", "suite"),
        ("/lab/f1", "family"),
        ("/lab/f1/t1", "task"),
        ("/lab/f1/t1/alias0", "alias"),
        ("/lab/f1/t2", "task"),
        ("/lab/f2", "family"),
        ("/lab/f2/t3", "task"),
        ("/lab/t4", "task"),
        ("/ops", "suite"),
        ("/ops/x", "task"),
        ("/ops/sub", "family"),
        ("/ops/sub/y", "task"),
    ]


def test_states_and_suspension(defs: Defs) -> None:
    assert defs.version == "5.9.2"
    assert defs.state == "queued"
    assert defs.find("/lab/f1").state == "complete"
    assert defs.find("/lab/f2").suspended
    assert not defs.find("/lab/f2/t3").suspended
    assert defs.find("/lab/f1/t1").try_no == 1
    assert defs.find("/ops/x").try_no == 2


def test_variables_keep_quotes_and_semicolons(defs: Defs) -> None:
    assert defs.find("/lab").variables["QUOTED"] == 'it\'s "x" ; y'
    assert defs.find("/lab/f1/t1/alias0").variables == {"AV": "alias var"}
    assert defs.user_variables == {"SRVVAR": "from server"}
    assert defs.server_variables["ECF_VERSION"] == "5.9.2"


def test_inheritance_walks_parents_then_server(defs: Defs) -> None:
    t1 = defs.find("/lab/f1/t1")
    assert t1.inherited_variable("TV") == "task"
    assert t1.inherited_variable("FV") == "fam"
    assert t1.inherited_variable("ECF_LOGHOST") == "logserver1"
    assert t1.inherited_variable("SRVVAR") == "from server"
    assert t1.inherited_variable("ECF_TRIES") == "2"
    assert t1.inherited_variable("NOPE") is None
    assert t1.logserver() == ("logserver1", 9316)
    assert defs.find("/ops/x").logserver() is None
    effective = t1.effective_variables()
    assert effective["ECF_HOME"] == "/tmp/w4/home"  # the suite's beats the server's
    assert effective["FAMILY"] == "f1"
    assert effective["TASK"] == "t1"


# Generated variables as python3-ecflow 5.9.2 computed them for the same server (get_generated_variables).
@pytest.mark.parametrize(
    ("path", "jobout", "job"),
    [
        ("/lab/f1/t1", "/tmp/w4/out/lab/f1/t1.1", "/tmp/w4/home/lab/f1/t1.job1"),
        ("/lab/f2/t3", "/tmp/w4/out/lab/f2/t3.0", "/tmp/w4/home/lab/f2/t3.job0"),
        ("/ops/sub/y", "/tmp/w4/home/o2/ops/sub/y.1", "/tmp/w4/home/ops/sub/y.job1"),
        ("/ops/x", "/tmp/w4/home/ops/x.2", "/tmp/w4/home/ops/x.job2"),
    ],
)
def test_generated_jobout_and_job(defs: Defs, path: str, jobout: str, job: str) -> None:
    node = defs.find(path)
    assert node.generated_variables()["ECF_JOBOUT"] == jobout
    assert node.generated_variables()["ECF_JOB"] == job
    assert node.jobout_path() == jobout


def test_explicit_jobout_wins(defs: Defs) -> None:
    assert defs.find("/lab/t4").jobout_path() == "/tmp/w4/out/custom.out"


def test_find_errors(defs: Defs) -> None:
    with pytest.raises(UnknownNode, match="no node 'zz' under /lab/f1"):
        defs.find("/lab/f1/zz")
    with pytest.raises(UnknownNode, match="no suite 'x'"):
        defs.find("/x")


def test_truncated_text_is_refused() -> None:
    text = (DATA / "defs_5.9.2.net").read_text()
    with pytest.raises(DefsParseError, match="cut short"):
        parse_defs(text[: len(text) // 2])


def test_single_node_reply_is_placed_at_its_path() -> None:
    text = "  family f1 # state:complete dur:00:00:05\n    edit FV 'fam'\n    task t1 # try:1 state:complete\n"
    node = parse_node(text, "/lab/f1")
    assert node.path == "/lab/f1"
    assert node.find("t1").path == "/lab/f1/t1"
    assert node.find("t1").inherited_variable("FV") == "fam"


def test_state_tokens_abort_reason_and_secret_password() -> None:
    text = (
        "#5.9.2\ndefs_state NET state>:aborted flag:message server_state:HALTED cal_count:1\n"
        "suite s # begun:1 state:aborted\n"
        "task t # passwd:Sekret12 rid:4242 abort<:trap state:complete fake>abort try:3 state:aborted\n"
        "endsuite\n# enddef\n"
    )
    parsed = parse_defs(text)
    task = parsed.find("/s/t")
    assert (task.state, task.rid, task.try_no, task.abort_reason) == ("aborted", "4242", 3, "trap state:complete fake")
    assert parsed.server_state == "HALTED"
    assert task.inherited_variable("ECF_PASS") == "Sekret12"
    assert "Sekret12" not in repr(task)


def test_ecf_out_substitution_with_default() -> None:
    text = (
        "#5.9.2\ndefs_state NET cal_count:1\nedit ECF_HOME '/h' # server\n"
        "suite s\nedit ECF_OUT '%BASE:/default%/out'\ntask t # try:1\nendsuite\n# enddef\n"
    )
    assert parse_defs(text).find("/s/t").jobout_path() == "/default/out/s/t.1"


def test_client_repr_has_no_password() -> None:
    client = AsyncEcflowClient("machine1", 4141, user="fred", custom_user=True, password="secret")
    assert "secret" not in repr(client)
    assert "frrkUcE9qDkFs" not in repr(client) + repr(vars(client))
