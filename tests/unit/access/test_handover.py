"""handover.py: an ecFlow route's clients handed to ssh's master (here a stand-in speaking its protocol) right after
accept, and piped through ssh's socket when it cannot take them."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.unit.access.other_account import foreign_client, needs_root
from tests.unit.transport.fake_master import fake_master

from ecflow_remote.access import handover, pipe

TARGET = ("machine1", 4141)


class _Forwards(handover.HandoverForwards):
    """Counts the clients piped through Python (pipe.Client objects made)."""

    def __init__(self, route: pipe.PipeRoute, control: Path, sockets: dict[tuple[str, int], Path]) -> None:
        super().__init__([route])
        self.upstreams.control = self.control = control
        self.upstreams.sockets = sockets
        self.piped = 0

    def client(self, route: pipe.PipeRoute) -> pipe.Client:
        self.piped += 1
        return super().client(route)

    @property
    def port(self) -> int:
        return self.routes[0].listen[1]


@pytest.fixture
def forwards(tmp_path: Path, echo: Path) -> Iterator[Callable[..., _Forwards]]:
    made: list[_Forwards] = []

    def make(handoff: bool = True) -> _Forwards:
        fw = _Forwards(pipe.PipeRoute(("127.0.0.1", 0), TARGET, handoff), tmp_path / "main.sock", {TARGET: echo})
        made.append(fw.start())
        return fw

    yield make
    for fw in made:
        fw.stop()


def _echoes(port: int, data: bytes = b"ping") -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        assert c.recv(len(data), socket.MSG_WAITALL) == data


def _until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_master_takes_the_client_and_python_reads_nothing(forwards: Callable[..., _Forwards]) -> None:
    fw = forwards()
    with fake_master(fw.control) as master:
        for _ in range(3):
            _echoes(fw.port)
        assert fw.piped == 0 and not fw.connections  # no pipe.Client: no byte went through Python
        # The master echoes as soon as it holds the socket; its "opened" reply may reach us a moment later.
        assert _until(lambda: fw.handed_off == 3) and [(r.host, r.port) for r in master.requests] == [TARGET] * 3
        assert _until(lambda: not fw.handoffs)  # each control connection closed with its channel


def test_many_at_once(forwards: Callable[..., _Forwards]) -> None:
    fw = forwards()
    with fake_master(fw.control):
        clients = [socket.create_connection(("127.0.0.1", fw.port), timeout=5) for _ in range(30)]
        try:
            for i, c in enumerate(clients):
                c.sendall(b"%03d" % i)
            assert _until(lambda: len(fw.handoffs) == 30)  # all live together, each with its control connection
            for i, c in enumerate(clients):
                assert c.recv(3, socket.MSG_WAITALL) == b"%03d" % i
        finally:
            for c in clients:
                c.close()
        assert _until(lambda: not fw.handoffs) and fw.handed_off == 30 and fw.piped == 0


@pytest.mark.parametrize("mode", ["refuse", "drop"])
def test_a_refusal_is_piped_instead(forwards: Callable[..., _Forwards], mode: str) -> None:
    fw = forwards()
    with fake_master(fw.control, mode) as master:
        _echoes(fw.port, b"hello after a refusal")
        assert len(master.requests) == 1 and fw.handed_off == 0 and fw.piped == 1


def test_no_master_no_handoff(forwards: Callable[..., _Forwards]) -> None:
    fw = forwards()  # nothing listens at main.sock
    _echoes(fw.port)
    assert fw.handed_off == 0 and fw.piped == 1


def test_a_route_without_handoff_is_piped(forwards: Callable[..., _Forwards]) -> None:
    fw = forwards(handoff=False)
    with fake_master(fw.control) as master:
        _echoes(fw.port)
        assert not master.requests and fw.piped == 1


def test_reconnecting_nothing_carries_the_client(forwards: Callable[..., _Forwards]) -> None:
    fw = forwards()
    fw.upstreams.sockets = {}  # what the supervisor sets while ssh is away
    with fake_master(fw.control) as master:
        with socket.create_connection(("127.0.0.1", fw.port), timeout=5) as c:
            assert c.recv(1) == b""
        assert not master.requests and fw.handed_off == 0


def test_stop_ends_the_forwards_in_ssh_hands(forwards: Callable[..., _Forwards]) -> None:
    fw = forwards()
    with fake_master(fw.control) as master:
        c = socket.create_connection(("127.0.0.1", fw.port), timeout=5)
        c.sendall(b"x")
        assert c.recv(1) == b"x"
        fw.stop()  # closes the control connection: the master ends the forward
        assert master.ended.wait(5)
        assert c.recv(1) == b""
        c.close()
        assert not fw.handoffs


def test_a_taken_port_names_the_address(forwards: Callable[..., _Forwards], tmp_path: Path) -> None:
    fw = forwards()
    second = _Forwards(pipe.PipeRoute(("127.0.0.1", fw.port), TARGET, True), tmp_path / "main.sock", {})
    with pytest.raises(OSError, match=rf"\('127.0.0.1', {fw.port}\)"):  # Listeners tells the user which one
        second.start()


@needs_root
def test_another_account_is_turned_away_before_the_master_hears_of_it(forwards: Callable[..., _Forwards]) -> None:
    fw = forwards()
    with fake_master(fw.control) as master:
        assert foreign_client(fw.port, b"hello") in ("reset", "eof")
        assert fw.foreign == 1 and not master.requests and fw.piped == 0
        _echoes(fw.port)
        assert _until(lambda: fw.handed_off == 1)
