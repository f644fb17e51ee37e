"""Definitions a hostile or broken server may send: self-referencing variables, deep nesting, endless expressions.
Each gives a clear error (or a bounded answer), never MemoryError or RecursionError."""

from __future__ import annotations

import pytest

from ecflow_remote.clients.ecflow import defs as defs_module
from ecflow_remote.clients.ecflow import expr
from ecflow_remote.clients.ecflow.defs import parse_defs
from ecflow_remote.clients.ecflow.logservers import logserver_problems, node_logserver
from ecflow_remote.errors import DefsParseError, ExpressionError, SubstitutionError


def _defs(*suite_lines: str) -> str:
    body = "\n".join(suite_lines)
    return f"#5.9.2\ndefs_state NET\nedit ECF_HOME '/h' # server\nsuite s\n{body}\ntask t # try:1\nendsuite\n# enddef\n"


# (variables on the suite, the text substituted at /s/t, the words of the error)
RUNAWAY = [
    pytest.param(["edit X '%X% %X%'"], "%X%", "grows past 1048576 characters", id="doubling"),
    pytest.param(["edit X '%Y%-%Y%'", "edit Y '%X%+%X%'"], "%Y%", "grows past", id="mutual-growth"),
    pytest.param(["edit X 'a%X%'"], "%X%", "still changes after 20 rounds", id="endless-chain"),
    pytest.param(["edit X '%Y%'", "edit Y '%X%-'"], "%X%", "still changes after 20 rounds", id="cycle"),
    pytest.param(["edit X '" + "y" * 2_000_000 + "'"], "%X%", "grows past", id="one-huge-value"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("variables", "text", "words"), RUNAWAY)
def test_runaway_substitution_is_a_clear_error(variables: list[str], text: str, words: str) -> None:
    task = parse_defs(_defs(*variables)).find("/s/t")
    with pytest.raises(SubstitutionError, match=words) as info:
        task.substitute(text)
    assert str(info.value).startswith("/s/t: substituting")
    assert "refer to themselves" in str(info.value)


def test_self_referencing_ecf_out_names_the_task() -> None:
    task = parse_defs(_defs("edit ECF_OUT '%X%'", "edit X '%X%/%X%'")).find("/s/t")
    with pytest.raises(SubstitutionError, match="/s/t"):
        task.jobout_path()


def test_substitution_that_settles_is_unchanged() -> None:
    task = parse_defs(_defs("edit A '%B%/a'", "edit B '%C%/b'", "edit C '/c'", "edit P '100%%'")).find("/s/t")
    assert task.substitute("%A% %NONE:dflt% %P% %X%") == "/c/b/a dflt 100% %X%"
    assert task.substitute("%SELF%") == "%SELF%"


def test_runaway_log_host_is_reported_not_raised() -> None:
    text = _defs("edit ECF_LOGHOST '%ECF_LOGHOST%%ECF_LOGHOST%'", "edit ECF_LOGPORT '9316'")
    parsed = parse_defs(text)
    assert node_logserver(parsed.find("/s/t")) is None
    assert logserver_problems({"srv": parsed}) == [
        "srv /s/t: ECF_LOGHOST '%ECF_LOGHOST%%ECF_LOGHOST%' / ECF_LOGPORT '9316' is not a usable log server"
    ]


def test_deep_nesting_is_refused_at_the_limit() -> None:
    depth = defs_module.MAX_NODE_DEPTH
    families = [f"family f{i}" for i in range(depth - 2)]
    ok = parse_defs(_defs(*families))  # the suite, depth-2 families and the task: exactly at the limit
    assert max(len(n.path.split("/")) - 1 for n in ok) == depth
    with pytest.raises(DefsParseError, match=f"nested more than {depth} levels"):
        parse_defs(_defs(*families, "family one_more"))


def test_deep_nesting_far_past_recursion_depth() -> None:
    with pytest.raises(DefsParseError, match="line 204: family 'f199' is nested more than 200"):
        parse_defs(_defs(*(f"family f{i}" for i in range(20_000))))


@pytest.mark.parametrize("text", ["(" * 5000 + "a" + ")" * 5000, "not " * 5000 + "a", "! " * 101 + "a"])
def test_deeply_nested_expression_is_an_expression_error(text: str) -> None:
    with pytest.raises(ExpressionError, match="nests more than 100"):
        expr.parse(text)


def test_long_flat_chains_evaluate_without_recursion() -> None:
    task = parse_defs(_defs("task a # state:complete")).find("/s/t")
    many = 20_000
    assert expr.evaluate(" and ".join(["a == complete"] * many), task) is True
    holds, reasons = expr.explain(" or ".join(["a == queued"] * many), task)
    assert not holds and len(reasons) == many
    holds, reasons = expr.explain("not (" + " and ".join(["a == complete"] * many) + ")", task)
    assert not holds and reasons[0].startswith("not (a == complete and a == complete")
