"""The server's log (`--log=get`) read for ecflow_ui's Timeline and Server load: each node's state changes at the
log's times, and the requests per minute (child commands and user commands, by suite)."""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from dataclasses import dataclass, field

# Lines read: `LOG:[03:16:32 6.12.2026]  aborted: /lab/f1/fails try-no: 1 reason: …` (a state change),
# `MSG:[…] chd:init /lab/f1/hello` (a child command), `MSG:[…] --alter add variable FOO x /s/t :user@host` (a user's).
_STATES = frozenset({"unknown", "queued", "submitted", "active", "complete", "aborted"})
_PATH = re.compile(r"(?:^|[\s=])(/[^\s:]*)")


@dataclass
class LogDigest:
    """What the plots need from a stretch of log; times are seconds on the log's own clock (read as UTC)."""

    first: int = 0
    last: int = 0
    states: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # path -> [(time, state)], in order
    # Requests per minute since `first`'s minute: child commands, user commands, and each suite's (both kinds).
    child: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    user: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    suites: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))


def _suite(text: str) -> str:
    found = _PATH.search(text)
    if not found or found.group(1) == "/":
        return ""
    return found.group(1).split("/")[1]


def _seconds(stamp: str) -> int:
    # `03:16:32 6.12.2026`
    hms, dmy = stamp.split(" ")
    h, m, s = hms.split(":")
    day, month, year = dmy.split(".")
    return calendar.timegm((int(year), int(month), int(day), int(h), int(m), int(s), 0, 0, 0))


def digest(text: str) -> LogDigest:
    """One pass over the log's lines (a day of a busy server's log is a few hundred thousand)."""
    out = LogDigest()
    states: dict[str, list[tuple[int, str]]] = defaultdict(list)
    times: dict[str, int] = {}  # many lines share a second: each stamp is converted once
    first = last = None
    for line in text.splitlines():
        kind = line[:5]
        if kind not in ("LOG:[", "MSG:[") or line[13:14] != " ":
            continue
        close = line.find("]", 14)
        if close < 0:
            continue
        stamp = line[5:close]
        t = times.get(stamp)
        if t is None:
            try:
                t = times[stamp] = _seconds(stamp)
            except ValueError:
                continue
        first = t if first is None else first
        last = t
        rest = line[close + 1 :].lstrip(" ")
        if kind == "LOG:[":
            state, _, after = rest.partition(": ")
            path = after.split(" ", 1)[0]
            if state in _STATES and path.startswith("/") and path != "/":  # `/` is the server's own state
                states[path].append((t, state))
            continue
        minute = t // 60 * 60
        if rest.startswith("chd:"):
            out.child[minute] += 1
        elif rest.startswith("--"):
            out.user[minute] += 1
        else:
            continue  # the server's own messages (start-up, checkpoints) are not requests
        suite = _suite(rest.split(" :", 1)[0])
        if suite:
            out.suites[suite][minute] += 1
    out.first, out.last = first or 0, last or 0
    out.states = dict(states)
    return out


def load_series(d: LogDigest) -> dict[str, object]:
    """Requests per minute as dense arrays from the first minute to the last (what the Server load plot draws)."""
    start = d.first // 60 * 60
    count = (d.last // 60 * 60 - start) // 60 + 1 if d.last else 0

    def dense(per_minute: dict[int, int]) -> list[int]:
        values = [0] * count
        for minute, n in per_minute.items():
            values[(minute - start) // 60] = n
        return values

    return {
        "start": start,
        "child": dense(d.child),
        "user": dense(d.user),
        "suites": {name: dense(per) for name, per in sorted(d.suites.items())},
    }


def timeline(d: LogDigest, under: str = "/") -> list[tuple[str, list[tuple[int, str]]]]:
    """Each node's state changes (under a path), by path: what the Timeline plot draws."""
    prefix = under.rstrip("/") + "/"
    return sorted((p, s) for p, s in d.states.items() if under == "/" or p == under or p.startswith(prefix))
