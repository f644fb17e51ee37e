"""The supervisor's inbox and its one wait: requests answered as they come, a child's end and wake() end a wait."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecflow_remote.endpoints import Wanted
from ecflow_remote.tunnel import inbox, servicerequests
from ecflow_remote.tunnel.events import Events

WANTED = [Wanted("server", "sys-m2", "machine2", 3142, ("/a",)), Wanted("logserver", "l:1", "l", 1)]


class Supervisor:
    """The inbox's side as the supervisor runs it: one thread waiting on the events, answering what was asked."""

    def __init__(self, rundir: Path, answering: bool = True) -> None:
        self.events = Events()
        self.inbox = inbox.Inbox(rundir, self.events)
        self.answering = answering
        self.got: list[Wanted] = []
        self.wakeups = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.stopping:
            self.events.wait(30)
            self.wakeups += 1
            if self.answering and (asked := self.inbox.take()):
                self.got += [w for one in asked for w in one.wanted]
                self.inbox.answer(asked)

    def stop(self) -> None:
        self.stopping = True
        self.events.wake()
        self.thread.join(5)
        self.inbox.stop()
        self.events.close()


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    s = Supervisor(tmp_path)
    s.inbox.start()
    s.thread.start()
    yield s
    s.stop()


def test_a_request_is_answered_once_carried_and_the_socket_is_private_to_the_run_dir(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    assert inbox.ask(tmp_path, WANTED) is True
    assert time.monotonic() - t0 < 2  # answered as it came: no polling tick to wait for
    assert supervisor.got == WANTED
    assert inbox.ask(tmp_path, []) is True  # nothing to ask: no request at all
    assert supervisor.got == WANTED
    assert supervisor.inbox.problems == []


def test_the_supervisor_sleeps_while_nobody_asks(supervisor: Supervisor) -> None:
    before = supervisor.wakeups
    time.sleep(1.0)
    assert supervisor.wakeups == before


def test_a_bad_request_is_refused_with_a_reason_and_the_inbox_goes_on(supervisor: Supervisor, tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(inbox.socket_path(tmp_path)))
        s.sendall(b'{"version": 1, "servers": [{"name": "x y", "host": "h", "port": 1}]}')
        s.shutdown(socket.SHUT_WR)
        assert b'"ok": false' in s.recv(4096)
    assert supervisor.inbox.problems == ["a request to carry more services was ignored: bad server name 'x y'"]
    assert supervisor.got == []
    assert inbox.ask(tmp_path, WANTED[:1]) is True
    assert supervisor.got == WANTED[:1]


def test_an_unanswered_request_times_out_and_a_gone_supervisor_is_not_waited_for(tmp_path: Path) -> None:
    s = Supervisor(tmp_path, answering=False)
    s.inbox.start()
    s.thread.start()
    try:
        t0 = time.monotonic()
        assert inbox.ask(tmp_path, WANTED, timeout=0.5) is False
        assert 0.4 < time.monotonic() - t0 < 3
        t0 = time.monotonic()
        assert inbox.ask(tmp_path, WANTED, timeout=30, alive=lambda: False) is False
        assert time.monotonic() - t0 < 3
    finally:
        s.stop()
    assert not inbox.socket_path(tmp_path).exists()


def test_without_an_inbox_a_request_file_is_left_for_an_older_supervisor(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def older_supervisor() -> None:  # reads request files, removes them once answered
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            names = [p.name for p in tmp_path.iterdir() if p.name.startswith(servicerequests.REQUEST_PREFIX)]
            if names:
                seen.append(names)
                for name in names:
                    (tmp_path / name).unlink()
                return
            time.sleep(0.01)

    t = threading.Thread(target=older_supervisor)
    t.start()
    assert inbox.ask(tmp_path, WANTED, timeout=10) is True
    t.join()
    assert len(seen) == 1 and len(seen[0]) == 1


def test_a_child_ending_and_another_thread_end_a_wait_at_once() -> None:
    events = Events()
    events.catch_signals()  # pytest runs tests on the main thread: SIGCHLD reaches the wait
    try:
        child = subprocess.Popen(["sleep", "0.2"])
        t0 = time.monotonic()
        while child.poll() is None and time.monotonic() - t0 < 10:
            events.wait(10)
        assert child.poll() == 0 and time.monotonic() - t0 < 3
        threading.Timer(0.2, events.wake).start()
        t0 = time.monotonic()
        events.wait(10)
        assert time.monotonic() - t0 < 3
        t0 = time.monotonic()
        events.wait(0.3)  # nothing happens: the deadline ends it
        assert 0.25 < time.monotonic() - t0 < 3
    finally:
        events.close()


def test_an_inbox_that_cannot_listen_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    events = Events()
    box = inbox.Inbox(tmp_path / ("d" * 120), events)  # longer than any AF_UNIX path
    try:
        box.start()
        assert box.sock is None and len(box.problems) == 1 and "cannot ask for more servers" in box.problems[0]
    finally:
        box.stop()
        events.close()
