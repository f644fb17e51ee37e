"""The agent's keepalive: often while it is needed, rarely while it only stands by, a burst when asked; and the
far side's own pings only while streams are open."""

from __future__ import annotations

import asyncio

from tests.unit.transport.agent.agent_fixtures import echo, exchange, run, serve, start

from ecflow_remote.transport.agent.keepalive import AGAIN, BURST, Keepalive


class FakeSession:
    """Answers pings after `rtt` (never while `frozen`), and counts them."""

    def __init__(self, rtt: float = 0.001) -> None:
        self.rtt = rtt
        self.frozen = False
        self.streams = 0
        self.reason: str | None = None
        self.pinged: list[float] = []

    @property
    def closed(self) -> bool:
        return self.reason is not None

    def busy(self) -> bool:
        return self.streams > 0

    async def ping(self, timeout: float) -> float:
        self.pinged.append(asyncio.get_running_loop().time())
        if self.frozen:
            await asyncio.sleep(timeout)
            raise TimeoutError
        await asyncio.sleep(self.rtt)
        return self.rtt

    def die(self, reason: str) -> None:
        self.reason = reason


async def pings_within(session: FakeSession, seconds: float) -> int:
    before = len(session.pinged)
    await asyncio.sleep(seconds)
    return len(session.pinged) - before


def test_a_standing_by_agent_rests_and_a_needed_one_does_not() -> None:
    async def main() -> None:
        session, fast = FakeSession(), [True]
        keep = Keepalive(session, interval=0.1, timeout=1.0, rest=10.0, fast=lambda: fast[0])
        task = asyncio.ensure_future(keep.run())
        await asyncio.sleep(BURST * AGAIN + 0.1)
        assert len(session.pinged) == BURST  # the start: the link measured at once
        assert await pings_within(session, 0.5) == 0 and keep.resting  # fast, nothing on it: resting
        session.streams = 1
        keep.woken()  # a stream opened: a ping at once, then every interval while it runs
        assert 4 <= await pings_within(session, 0.5) <= 6
        session.streams = 0
        await asyncio.sleep(0.15)
        assert keep.resting
        fast[0] = False  # judged slow after a burst that a disagreeing sample asked for: every interval
        keep.burst()
        await asyncio.sleep(BURST * AGAIN + 0.1)
        assert 4 <= await pings_within(session, 0.5) <= 6 and not keep.resting
        task.cancel()

    run(main())


def test_a_burst_when_asked_and_when_a_round_trip_disagrees() -> None:
    async def main() -> None:
        session, answers = FakeSession(), [False] * 40
        keep = Keepalive(session, 0.1, 1.0, lambda _: answers.pop(0), rest=10.0, fast=lambda: True)
        task = asyncio.ensure_future(keep.run())
        await asyncio.sleep(AGAIN * 1.5)  # two pings of the start's burst
        keep.burst()  # a free sample disagreed meanwhile: the burst is made whole again
        await asyncio.sleep(BURST * AGAIN + 0.3)
        assert len(session.pinged) == 2 + BURST and keep.resting
        keep.burst()  # a free sample disagreed, or the network changed
        assert await pings_within(session, BURST * AGAIN + 0.3) == BURST and keep.resting
        keep.burst()
        await asyncio.sleep(AGAIN / 4)
        answers[:] = [True] + [False] * 20  # the burst's second ping disagrees: no second burst within the first
        await asyncio.sleep(BURST * AGAIN + 0.3)
        assert len(session.pinged) == 2 + 3 * BURST and keep.resting
        answers[:] = [False] * (BURST - 1) + [True] + [False] * 20  # a burst that ends in doubt: no rest yet,
        keep.burst()
        await asyncio.sleep(BURST * AGAIN + 0.3)
        assert len(session.pinged) == 2 + 4 * BURST + 1 and keep.resting  # one more ping `interval` later first
        task.cancel()

    run(main())


def test_no_answer_ends_the_session_even_from_rest() -> None:
    async def main() -> None:
        session = FakeSession()
        keep = Keepalive(session, interval=0.05, timeout=0.3, rest=0.2, fast=lambda: True)
        task = asyncio.ensure_future(keep.run())
        await asyncio.sleep(BURST * AGAIN + 0.1)
        session.frozen = True  # a hung agent: noticed within rest + timeout
        await asyncio.sleep(0.2 + 0.3 + 0.2)
        assert session.closed and "did not answer a ping within 0.3s" in str(session.reason)
        await asyncio.wait_for(task, 1)

    run(main())


def test_the_far_side_pings_only_at_its_start_and_while_streams_are_open() -> None:
    async def main() -> None:
        session = await start()
        server, port = await serve(echo)
        try:
            await asyncio.sleep(2.5)  # its start's ping, then none while idle (it pinged every 2 s before)
            idle = session.mux.pings_answered
            assert idle <= 1, idle
            await asyncio.sleep(2.5)
            assert session.mux.pings_answered == idle
            assert await exchange(session, port, b"a stream") == b"a stream"
            await asyncio.sleep(0.2)
            assert session.mux.pings_answered == idle + 1  # at once as the stream opened
        finally:
            server.close()
            await session.close()

    run(main())
