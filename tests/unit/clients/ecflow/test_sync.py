"""Incremental sync: requests as python3-ecflow sends them, and real 5.9.2 replies applied to the tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecflow_remote.clients.ecflow import commands, sync, wire
from ecflow_remote.clients.ecflow.commands import Identity
from ecflow_remote.clients.ecflow.defs import Defs, parse_defs

DATA = Path(__file__).parents[2] / "data"
ROOT = Identity("vm", "root")


def reply(name: str) -> commands.Reply:
    body = (DATA / f"{name}_5.9.2.bin").read_bytes()[wire.HEADER_SIZE :]
    return commands.decode_reply(wire.decode_json(body))


def full_tree() -> Defs:
    result = sync.apply_sync(None, reply("reply_sync_full"))
    assert result.full
    return result.defs


@pytest.mark.parametrize(
    ("api", "numbers", "capture"),
    [(sync.SYNC_FULL, (0, 0), "req_sync_full"), (sync.NEWS, (107, 5), "req_news"), (sync.SYNC, (107, 5), "req_sync")],
)
def test_sync_requests_match_python3_ecflow(api: int, numbers: tuple[int, int], capture: str) -> None:
    frame = wire.encode_frame(wire.encode_json(sync.sync_request(ROOT, api, *numbers)))
    assert frame == (DATA / f"{capture}_5.9.2.bin").read_bytes()


def test_full_sync_carries_the_change_numbers() -> None:
    defs = full_tree()
    assert (defs.state_change_no, defs.modify_change_no) == (107, 5)
    assert defs.server_state == "HALTED"
    assert defs.find("/s/f/b").suspended and defs.find("/s/f/b").attrs.trigger == "a == complete and a:ev"


def test_news_replies() -> None:
    assert sync.news_of(reply("reply_news_none")) == sync.NO_NEWS
    assert sync.news_of(reply("reply_news")) == sync.HAS_NEWS


def test_each_captured_memento_changes_the_tree() -> None:
    defs = full_tree()
    steps = [
        ("reply_sync_suspended", [("/s/f/c", "suspended", "", False, True)]),
        ("reply_sync_event", [("/s/f/a", "event", "ev", False, True)]),
        ("reply_sync_meter", [("/s/f/a", "meter", "m", 0, 70)]),
        ("reply_sync_label", [("/s/f/a", "label", "lab", "hello", "new text")]),
        ("reply_sync_state", [("/s/f/b", "state", "", "queued", "complete")]),
        ("reply_sync_server_running", [("/", "server_state", "", "HALTED", "RUNNING")]),
    ]
    for name, expected in steps:
        result = sync.apply_sync(defs, reply(name))
        assert not result.full
        got = [(c.path, c.what, c.name, c.old, c.new) for c in result.changes]
        assert got == expected, name
    a = defs.find("/s/f/a")
    assert a.attrs.events == {"ev": True} and a.attrs.meters["m"].value == 70 and a.attrs.labels["lab"] == "new text"
    assert defs.find("/s/f/c").suspended and defs.find("/s/f/b").state == "complete"
    assert defs.server_state == "RUNNING" and defs.state_change_no == 118


def test_added_and_deleted_attributes_replace_them_all() -> None:
    defs = full_tree()
    result = sync.apply_sync(defs, reply("reply_sync_add_variable"))
    assert defs.find("/s/f/a").variables == {"NEWVAR": "v1"}
    assert result.refetch == ["/s/f/a"]
    sync.apply_sync(defs, reply("reply_sync_delete_variable"))
    assert defs.find("/s/f/a").variables == {}
    assert defs.find("/s/f/a").attrs.meters["m"].value == 70


def test_limit_requeue_and_a_new_suite() -> None:
    defs = full_tree()
    sync.apply_sync(defs, reply("reply_sync_limit"))
    assert defs.find("/s").attrs.limits["lim"].value == 1
    sync.apply_sync(defs, reply("reply_sync_requeue"))
    assert defs.find("/s/f/b").state == "queued" and defs.find("/s/f/b").try_no == 0
    result = sync.apply_sync(defs, reply("reply_sync_new_suite_full"))
    assert result.full
    assert ("/s2", "added") in [(c.path, c.what) for c in result.changes]


def test_a_memento_for_a_node_not_in_the_tree_asks_for_a_full_sync() -> None:
    defs = full_tree()
    defs.suites[0].children[0].children.pop(2)  # /s/f/c
    with pytest.raises(sync.NeedsFullSync, match="/s/f/c"):
        sync.apply_sync(defs, reply("reply_sync_suspended"))


def test_a_memento_type_named_once_per_reply_applies_to_every_node() -> None:
    # Captured from 5.9.2 after `suspend /lab/f1/hello /lab/f2/later`: cereal names SuspendedMemento in the first
    # node's list only; the second node's carries just its number, and must not force a whole definition.
    defs = sync.apply_sync(None, reply("reply_sync_full_lab")).defs
    result = sync.apply_sync(defs, reply("reply_sync_suspended_two"))
    assert not result.full
    got = [(c.path, c.what, c.old, c.new) for c in result.changes if c.what == "suspended"]
    assert got == [("/lab/f1/hello", "suspended", False, True), ("/lab/f2/later", "suspended", False, True)]
    assert defs.find("/lab/f2/later").suspended


def test_a_reply_found_unusable_midway_reports_what_it_already_changed() -> None:
    # The first node's memento is applied in place before the second node proves missing: a diff against the
    # whole definition fetched next no longer sees that change, so the exception must carry it.
    defs = sync.apply_sync(None, reply("reply_sync_full_lab")).defs
    f2 = defs.find("/lab/f2")
    f2.children = [c for c in f2.children if c.name != "later"]
    with pytest.raises(sync.NeedsFullSync, match="/lab/f2/later") as caught:
        sync.apply_sync(defs, reply("reply_sync_suspended_two"))
    assert [(c.path, c.what, c.new) for c in caught.value.applied] == [("/lab/f1/hello", "suspended", True)]


def test_the_late_flag_set_and_cleared() -> None:
    # Captured from 5.9.2 around `--alter set_flag late /s/f/t` and `--alter clear_flag late /s/f/t`: the other
    # flags in the same FlagMemento (message, task_aborted, zombie) are not changes of the tree.
    defs = sync.apply_sync(None, reply("reply_sync_full_flags")).defs
    assert defs.find("/s/f/t").late is False
    result = sync.apply_sync(defs, reply("reply_sync_late_set"))
    assert [(c.path, c.what, c.old, c.new) for c in result.changes] == [("/s/f/t", "late", False, True)]
    assert defs.find("/s/f/t").late
    result = sync.apply_sync(defs, reply("reply_sync_late_clear"))
    assert [(c.path, c.what, c.old, c.new) for c in result.changes] == [("/s/f/t", "late", True, False)]
    # The definition's text says it too (`flag:…,late,…` in the state comment).
    text = "#5.9.2\nsuite s\n task t # state:aborted flag:task_aborted,late,message\nendsuite\n# enddef\n"
    assert parse_defs(text).find("/s/t").late and not parse_defs(text.replace(",late", "")).find("/s/t").late


def test_a_server_variable_added_lands_in_the_user_variables() -> None:
    # Captured from 5.9.2 around `--alter add variable PAGE_SV "from the page" /`: ServerVariableMemento carries the
    # server's user variables (Defs::set_memento → set_user_variables); the generated ones (ECF_HOME…) stay.
    defs = sync.apply_sync(None, reply("reply_sync_full_servervars")).defs
    generated = dict(defs.server_variables)
    assert defs.user_variables == {"SV": "2"} and "ECF_HOME" in generated
    result = sync.apply_sync(defs, reply("reply_sync_server_variable"))
    assert [(c.path, c.what) for c in result.changes] == [("/", "variable")]
    assert defs.user_variables == {"SV": "2", "PAGE_SV": "from the page"}
    assert defs.server_variables == generated
