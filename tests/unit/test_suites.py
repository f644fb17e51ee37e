"""suites.py's views of a node tree (JSON and plain text), on a definition captured from a real ecflow_server 5.9.2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.unit.samples import DATA

from ecflow_remote import suites
from ecflow_remote.clients.ecflow import Defs, parse_defs


@pytest.fixture(scope="module")
def defs() -> Defs:
    return parse_defs((DATA / "defs_5.9.2.net").read_text())


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node["children"]:
        yield from _walk(child)


def test_json_of_the_whole_definition(defs: Defs) -> None:
    data = suites.to_json("m1", defs)
    assert json.loads(json.dumps(data)) == data
    assert (data["server"], data["server_state"], data["state"]) == ("m1", "RUNNING", "queued")
    assert [s["name"] for s in data["suites"]] == ["lab", "ops"]
    nodes = [n for suite in data["suites"] for n in _walk(suite)]
    # Every node of the tree, in the tree's order, with its own kind, state and suspension.
    assert [n["path"] for n in nodes] == [n.path for n in defs]
    for mine, node in zip(nodes, defs, strict=True):
        assert (mine["name"], mine["kind"], mine["state"], mine["suspended"]) == (
            node.name,
            node.kind,
            node.state,
            node.suspended,
        )
    assert set(nodes[0]) == {"path", "name", "kind", "state", "suspended", "children"}
    f2 = next(n for n in nodes if n["path"] == "/lab/f2")
    assert f2["suspended"] and f2["state"] == "queued"


def test_json_of_one_node(defs: Defs) -> None:
    data = suites.to_json("m1", defs.find("/lab/f1"))
    assert set(data) == {"server", "node"}
    assert data["node"] == suites.node_json(defs.find("/lab/f1"))
    assert [c["path"] for c in data["node"]["children"]] == ["/lab/f1/t1", "/lab/f1/t2"]
    assert [a["kind"] for a in data["node"]["children"][0]["children"]] == ["alias"]


def test_plain_lines_of_the_whole_definition(defs: Defs) -> None:
    assert suites.plain_lines("m1", defs) == [
        "m1  RUNNING",
        "  suite lab  queued",
        "    family f1  complete",
        "      task t1  complete",
        "      task t2  complete",
        "    family f2  queued suspended",
        "      task t3  queued",
        "    task t4  complete",
        "  suite ops  complete",
        "    task x  complete",
        "    family sub  complete",
        "      task y  complete",
    ]


def test_plain_lines_of_a_subtree(defs: Defs) -> None:
    """No server line; the subtree's root at one indent whatever its depth; its alias (under t1) not listed."""
    assert suites.plain_lines("m1", defs.find("/lab/f1")) == [
        "  family f1  complete",
        "    task t1  complete",
        "    task t2  complete",
    ]


def test_server_state_heads_the_plain_view() -> None:
    halted = parse_defs(
        "#5.9.2\ndefs_state NET state>:complete server_state:HALTED cal_count:1\n"
        "suite s # begun:1 state:complete\ntask t # try:1 state:complete\nendsuite\n# enddef\n"
    )
    assert suites.plain_lines("ops", halted)[0] == "ops  HALTED"
    assert suites.to_json("ops", halted)["server_state"] == "HALTED"


@pytest.mark.parametrize(
    ("path", "changed", "shown"),
    [
        (None, "/lab/f1/t1", True),
        ("/", "/ops", True),
        ("/lab/f1", "/lab/f1", True),
        ("/lab/f1/", "/lab/f1/t1", True),
        ("/lab/f1", "/lab/f10/t1", False),  # a sibling whose name starts the same is not inside
        ("/lab/f1", "/lab", False),
        ("/lab/f1", "/", True),  # the server's own state concerns every subtree
    ],
)
def test_watch_shows_only_changes_within_the_path(path: str | None, changed: str, shown: bool) -> None:
    assert suites.within(path, changed) is shown
