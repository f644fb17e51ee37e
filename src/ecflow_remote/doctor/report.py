"""The diagnosis as data (a Report of Steps) and the walk that fills it: each link ok, warn or fail, and the first
failed one ends the walk."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn


@dataclass
class Step:
    """One link of the chain: ok, fail (the first broken link), warn (works, but watch it) or skip (not reached)."""

    name: str
    status: str
    detail: str
    fix: str | None = None


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    @property
    def broken(self) -> Step | None:
        return next((s for s in self.steps if s.status == "fail"), None)

    def to_json(self) -> dict[str, Any]:
        broken = self.broken
        return {
            "ok": broken is None,
            "broken": broken.name if broken else None,
            "steps": [asdict(s) for s in self.steps],
        }

    def text(self) -> str:
        marks = {"ok": "ok  ", "fail": "FAIL", "warn": "warn", "skip": "  - "}
        width = max((len(s.name) for s in self.steps), default=10)
        lines = []
        for s in self.steps:
            lines.append(f"{marks.get(s.status, s.status)}  {s.name:{width}}  {s.detail}")
            if s.fix:
                # Not "fix:": the advice is a sentence of its own, often starting with "fix" or "check".
                lines.append(f"{'':4}  {'':{width}}  what to do: {s.fix}")
        broken = self.broken
        lines.append(f"\nBroken link: {broken.name}." if broken else "\nEvery link works.")
        return "\n".join(lines)


class Stop(Exception):
    """The first broken link was found: the walk ends there."""


class Walk:
    def __init__(self) -> None:
        self.report = Report()

    def ok(self, name: str, detail: str) -> None:
        self.report.steps.append(Step(name, "ok", detail))

    def warn(self, name: str, detail: str, fix: str | None = None) -> None:
        self.report.steps.append(Step(name, "warn", detail, fix))

    def fail(self, name: str, detail: str, fix: str | None = None) -> NoReturn:
        self.report.steps.append(Step(name, "fail", detail, fix))
        raise Stop

    def add(self, step: Step) -> None:
        """A step worked out beforehand; a failed one ends the walk, as fail() does."""
        self.report.steps.append(step)
        if step.status == "fail":
            raise Stop
