"""The supervisor's decisions, without ssh: when to fail, retry, wait for a renewal, fall back, drop a session."""

from __future__ import annotations

import pytest

from ecflow_remote.tunnel import decisions
from ecflow_remote.tunnel.decisions import Failure, NextStep, after_failure, drops_session

LOST = Failure("the link to jump died")
REFUSED = Failure("your SSH certificate expired", refused=True)
FELL_BACK = Failure("no python3 on the far side; continuing with plain OpenSSH forwards", immediate=True)


def test_backoff_grows_and_is_capped() -> None:
    delays = [decisions.backoff(n) for n in range(10)]
    assert delays[0] == 0.0 and delays == sorted(delays)
    assert max(delays) == decisions.BACKOFF[-1] == 10.0
    assert decisions.backoff(-1) == 0.0


def test_a_first_start_fails_plainly_after_a_few_attempts() -> None:
    # Never up: a user waits for `up`; the first failures are retried at once, then it gives up.
    assert after_failure(LOST, been_up=False, attempt=0) == NextStep("retry", 0.0)
    assert after_failure(LOST, been_up=False, attempt=1).action == "retry"
    assert after_failure(LOST, been_up=False, attempt=2) == NextStep("fail")


def test_a_refusal_before_the_first_start_fails_at_once() -> None:
    assert after_failure(REFUSED, been_up=False, attempt=0) == NextStep("fail")


def test_once_up_the_tunnel_never_gives_up() -> None:
    for attempt in range(20):
        assert after_failure(LOST, been_up=True, attempt=attempt).action == "retry"


def test_a_refusal_once_up_waits_for_the_renewal() -> None:
    step = after_failure(REFUSED, been_up=True, attempt=5)
    assert step.action == "await_renewal" and step.delay == decisions.REFUSED_RETRY


@pytest.mark.parametrize("been_up", [False, True])
def test_a_fallback_to_plain_forwards_starts_again_at_once(been_up: bool) -> None:
    # Even on the last attempt of a first start: the fallback is a change of transport, not a failure of the link.
    assert after_failure(FELL_BACK, been_up=been_up, attempt=2) == NextStep("retry", 0.0)


@pytest.mark.parametrize(
    ("code", "messages", "expected"),
    [
        (0, "", True),  # the remote command ended: the hop ended the session itself (Teleport)
        (1, "", True),
        (255, "PTY allocation request failed on channel 0", True),
        (255, "shell request failed on channel 0", True),
        (255, "Connection closed by 198.18.0.2 port 22", False),  # ssh's own error: a fault, not a refusal
        (None, "", False),
    ],
)
def test_a_hop_without_sessions_is_recognised(code: int | None, messages: str, expected: bool) -> None:
    assert drops_session(has_session=True, proven=False, exit_code=code, messages=messages, refused=False) is expected


def test_a_proven_session_or_a_refused_login_never_drops_the_session() -> None:
    assert not drops_session(has_session=True, proven=True, exit_code=0, messages="", refused=False)
    assert not drops_session(has_session=True, proven=False, exit_code=0, messages="", refused=True)
    assert not drops_session(has_session=False, proven=False, exit_code=0, messages="", refused=False)


def test_retry_message() -> None:
    assert decisions.retry_message("lost", 2.0) == "lost; retrying in 2 s"
    assert decisions.retry_message("lost", 0.0) == "lost"


@pytest.mark.parametrize(
    ("messages", "permanent"),
    [
        ("ssh: Could not resolve hostname nosuchjump: Temporary failure in name resolution\n", True),
        ("ssh: connect to host 198.18.13.2 port 2: Connection refused\n", True),
        ("/tmp/c/cfg: line 18: Bad configuration option: frobnicate\n", True),
        ("Can't open user config file /tmp/c/ssh_config: Permission denied\n", True),
        ("Host key verification failed.\n", True),
        ("ssh: connect to host 198.18.13.2 port 22: Connection timed out\n", False),  # the network may come back
        ("Timeout, server jump not responding.\n", False),
        ("channel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\n", False),
    ],
)
def test_permanent_failures_end_a_first_start_at_once(messages: str, permanent: bool) -> None:
    """A name that does not resolve, a refused port, a bad config: `up` answers at once instead of waiting its
    whole timeout; once the tunnel has been up, it retries all the same (a laptop between networks)."""
    assert decisions.is_permanent(messages) is permanent
    failure = Failure("jump leg: ...", permanent=decisions.is_permanent(messages))
    first = after_failure(failure, been_up=False, attempt=0)
    assert first.action == ("fail" if permanent else "retry")
    assert after_failure(failure, been_up=True, attempt=0).action == "retry"


def test_renewal_message_only_when_waiting_for_one() -> None:
    assert "reconnects by itself" in decisions.renewal_message("your SSH certificate expired at 10:00")


def test_the_agent_runs_wherever_the_far_side_may_need_it() -> None:
    # Whatever the first hop: the link is measured through ssh once up (transport/link.py routes each connection).
    assert decisions.agent_for_link("auto")
    assert decisions.agent_for_link("agent")
    assert not decisions.agent_for_link("plain")


@pytest.mark.parametrize(
    ("agent_usable", "slow", "hint", "expected"),
    [
        (True, True, None, False),  # the agent compresses per stream, only what compresses
        (False, True, 0.0001, True),  # measured slow through ssh (a local relay's handshake says nothing)
        (False, False, None, False),  # measured fast: -C would cost throughput on a LAN
        (False, None, 0.030, True),  # never measured: the first hop's handshake
        (False, None, 0.0004, False),
        (False, None, None, True),  # behind a proxy of the user's own: a home link
    ],
)
def test_ssh_compresses_only_where_its_channels_carry_a_slow_link(
    agent_usable: bool, slow: bool | None, hint: float | None, expected: bool
) -> None:
    assert decisions.compress_plain(agent_usable, slow, hint) is expected
