"""Triggers, limits and time dependencies from real NET text, the expression evaluator and `why`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecflow_remote.clients.ecflow import expr
from ecflow_remote.clients.ecflow.defs import Defs, UnknownNode, parse_defs
from ecflow_remote.clients.ecflow.logservers import find_logservers, logserver_problems, node_logserver
from ecflow_remote.clients.ecflow.why import why

DATA = Path(__file__).parents[2] / "data"


@pytest.fixture
def defs() -> Defs:
    return parse_defs((DATA / "defs_attrs_5.9.2.net").read_text())


def test_attributes_are_parsed(defs: Defs) -> None:
    a = defs.find("/s3/f/a").attrs
    assert a.trigger == "(./b == complete or b == aborted) and not ./b:e and /s3/f/b:e"
    assert a.complete == "b eq complete"
    assert [t for t, _ in a.times] == [
        "time +00:10",
        "today 10:00",
        "date 1.*.*",
        "day monday",
        "cron 10:00 20:00 01:00",
    ]
    assert a.events == {"e1": True, "e2": True} and a.event_numbers == {"1": "e1"}
    assert defs.find("/s3/f").attrs.inlimits[0].node_only
    assert defs.find("/s3/f").attrs.repeat == "integer I 1 5"
    assert defs.find("/s3/f/b").attrs.labels == {"L": "multi\nline"}
    lim = defs.find("/s").attrs.limits["lim"]
    assert (lim.limit, lim.value) == (1, 1)
    assert defs.find("/s/f").attrs.inlimits[0].path == "/s"
    assert defs.find("/s/f/a").attrs.meters["m"].value == 70
    # The old tree is unchanged: variables and states as before.
    assert defs.find("/s/f/c").state == "complete" and defs.find("/s/f/c").try_no == 2


@pytest.mark.parametrize(
    ("text", "at", "result"),
    [
        ("a == complete", "/s/f/b", False),
        ("a == queued", "/s/f/b", True),
        ("a:ev", "/s/f/b", True),
        ("a:m ge 70 and a:m lt 71", "/s/f/b", True),
        ("./a:m > 70 or ../g/x eq queued", "/s/f/b", True),
        ("/s/f/c == complete AND NOT /s/f/d == complete", "/s/f/b", True),
        ("!(/s/f/c == complete)", "/s/f/b", False),
        ("a:1 == 1", "/s3/f/b", True),
        ("c", "/s/f/b", True),
        ("d", "/s/f/b", False),
        ("(b == complete) && a:e2 == set", "/s3/f/a", True),
    ],
)
def test_evaluator(defs: Defs, text: str, at: str, result: bool) -> None:
    assert expr.evaluate(text, defs.find(at)) is result


def test_unreadable_expression_is_an_error(defs: Defs) -> None:
    with pytest.raises(expr.ExpressionError):
        expr.parse("a == (b")


def test_why_names_the_server_parents_trigger_and_limit(defs: Defs) -> None:
    reasons = why(defs, "/s/f/b")
    assert reasons[0].startswith("The server is halted")
    assert "Parent /s/f is holding on limit /s:lim (1 of 1 tokens in use)" in reasons
    assert "/s/f/b is suspended" in reasons
    assert "/s/f/b is holding on trigger: a == complete and a:ev (a == complete: /s/f/a is queued)" in reasons


def test_why_time_dependencies_parent_suspended_and_states(defs: Defs) -> None:
    defs.server_state = "RUNNING"
    assert "/s3/f/a is holding on time +00:10" in why(defs, "/s3/f/a")
    assert why(defs, "/s/g/x") == ["Parent /s/g is suspended"]
    assert why(defs, "/s/f/c")[-1] == "/s/f/c is complete: requeue it to run it again"
    assert why(defs, "/s/f/d")[-1].startswith("/s/f/d is aborted")
    # A family: why its queued children do not run.
    assert "/s3/f/a is holding on today 10:00" in why(defs, "/s3/f")
    with pytest.raises(UnknownNode):
        why(defs, "/s/nope")


def test_logservers_with_inheritance(defs: Defs) -> None:
    assert node_logserver(defs.find("/s/f/a")) == ("loghost1", 9316)
    assert node_logserver(defs.find("/s3/f/a")) is None
    other = parse_defs((DATA / "defs_attrs_5.9.2.net").read_text())
    other.user_variables["ECF_LOGHOST"] = "%ECF_HOST%-log"
    other.user_variables["ECF_LOGPORT"] = "9316"
    other.find("/s/f/c").variables["ECF_LOGPORT"] = "nine"
    found = find_logservers({"one": defs, "two": other})
    assert [(u.host, u.port, u.servers, u.suites) for u in found] == [
        ("loghost1", 9316, ("one", "two"), (("one", "s"), ("two", "s"))),
        ("vm-log", 9316, ("two",), (("two", "s2"), ("two", "s3"))),
    ]
    assert logserver_problems({"two": other}) == [
        "two /s/f/c: ECF_LOGHOST 'loghost1' / ECF_LOGPORT 'nine' is not a usable log server"
    ]
