"""The plain transport's one look at the link before the main leg starts: the smallest of a few channel round trips."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ecflow_remote.transport.control import Answer
from ecflow_remote.tunnel import linkfigure


def probes(monkeypatch: pytest.MonkeyPatch, answers: list[Answer]) -> list[tuple[str, int]]:
    """control.ask answering `answers` in turn; the targets asked, in order."""
    asked: list[tuple[str, int]] = []

    async def ask(control: Path, target: tuple[str, int], timeout: float) -> Answer:
        asked.append(target)
        return answers[len(asked) - 1]

    monkeypatch.setattr(linkfigure.control, "ask", ask)
    return asked


def smallest(jump: Path) -> float | None:
    return asyncio.run(linkfigure._smallest_round_trip(jump, ("machine1", 22)))


def test_a_fast_answer_is_enough(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked = probes(monkeypatch, [Answer(True, 0.0008)])
    assert smallest(tmp_path) == 0.0008 and len(asked) == 1


def test_a_slow_answer_of_a_busy_moment_is_asked_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked = probes(monkeypatch, [Answer(True, 0.014), Answer(True, 0.0009), Answer(True, 0.5)])
    assert smallest(tmp_path) == 0.0009 and len(asked) == 2


def test_a_home_link_is_asked_at_most_probes_times(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked = probes(monkeypatch, [Answer(True, 0.033), Answer(True, 0.031), Answer(True, 0.035), Answer(True, 0.03)])
    assert smallest(tmp_path) == 0.031 and len(asked) == linkfigure.PROBES


def test_no_channel_no_figure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    probes(monkeypatch, [Answer(False, None, "Connection refused")])
    assert smallest(tmp_path) is None
    asked = probes(monkeypatch, [Answer(True, 0.02), Answer(False, None, "gone")])
    assert smallest(tmp_path) == 0.02 and len(asked) == 2
