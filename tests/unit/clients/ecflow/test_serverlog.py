"""The server log read for the Timeline and Server load plots, from lines ecflow_server 5.9.2 wrote."""

from __future__ import annotations

import calendar

from ecflow_remote.clients.ecflow import serverlog

LOG = """\
MSG:[23:59:58 5.12.2026] Started at 2026-Dec-05 23:59:58 universal time
MSG:[23:59:59 5.12.2026] --begin=lab :root@vm
LOG:[23:59:59 5.12.2026]  queued: /lab/f1/hello
LOG:[00:00:01 6.12.2026]  submitted: /lab/f1/hello job_size:451
LOG:[00:00:01 6.12.2026]  submitted: /lab/f1
MSG:[00:00:02 6.12.2026] chd:init /lab/f1/hello
LOG:[00:00:02 6.12.2026]  active: /lab/f1/hello
MSG:[00:00:03 6.12.2026] --news=0 66 5 :root@vm [:NO_NEWS]
ERR:[00:00:03 6.12.2026] something the server did not like
MSG:[00:01:04 6.12.2026] chd:abort /lab/f1/hello  exit status 1
LOG:[00:01:04 6.12.2026]  aborted: /lab/f1/hello try-no: 1 reason: exit status 1
MSG:[00:01:05 6.12.2026] --alter add variable X a b /ops/t :root@vm
LOG:[00:01:05 6.12.2026]  aborted: /
a line cut in the middle
"""


def at(hms: str, day: int = 6) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return calendar.timegm((2026, 12, day, h, m, s, 0, 0, 0))


def test_states_at_the_logs_times() -> None:
    d = serverlog.digest(LOG)
    assert d.first == at("23:59:58", 5) and d.last == at("00:01:05")
    assert d.states["/lab/f1/hello"] == [
        (at("23:59:59", 5), "queued"),
        (at("00:00:01"), "submitted"),
        (at("00:00:02"), "active"),
        (at("00:01:04"), "aborted"),
    ]
    assert "/" not in d.states  # the server's own state is not a node's
    assert [p for p, _ in serverlog.timeline(d, "/lab/f1")] == ["/lab/f1", "/lab/f1/hello"]
    assert serverlog.timeline(d, "/ops") == []


def test_requests_per_minute_child_user_and_suite() -> None:
    series = serverlog.load_series(serverlog.digest(LOG))
    assert series["start"] == at("23:59:00", 5)
    # Minutes 23:59, 00:00, 00:01: the begin; the init and a news; the abort and an alter.
    assert series["child"] == [0, 1, 1] and series["user"] == [1, 1, 1]
    assert series["suites"] == {"lab": [0, 1, 1], "ops": [0, 0, 1]}  # `--begin=lab` names no path
    assert serverlog.load_series(serverlog.digest("")) == {"start": 0, "child": [], "user": [], "suites": {}}
