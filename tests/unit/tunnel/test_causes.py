"""tunnel/causes.py: which failed checks waiting cannot change, from ssh's words and from the far-side agent's
answer (a real agent, run locally), and a custom user's password that was not read."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from tests.unit.transport.agent.agent_fixtures import start

from ecflow_remote.access.pipe import LoopThread, Upstreams
from ecflow_remote.errors import ProtocolError, ServerError, StreamTimeout
from ecflow_remote.plan import Endpoint
from ecflow_remote.profile.load import load_profile
from ecflow_remote.profile.model import Profile
from ecflow_remote.tunnel import causes

# ssh 9.2's lines in a master's log (-E), as seen against the simulated Centre.
SSH_LOG = """\
channel 9: open failed: connect failed: Connection refused
channel 21: open failed: connect failed: Temporary failure in name resolution
channel 3: open failed: connect failed: Name or service not known
channel 4: open failed: administratively prohibited: open failed
channel 5: open failed: connect failed: No route to host
channel 6: open failed: connect failed: Connection timed out
"""


def test_ssh_words_that_another_attempt_would_repeat() -> None:
    reasons = causes.open_failures(SSH_LOG)
    assert reasons[0] == "connect failed: Connection refused"
    codes = [causes.ssh_code(r) for r in reasons]
    # A host that does not answer or cannot be routed to now may be back in a moment: not lasting.
    assert codes == ["refused", "unknown-host", "unknown-host", "prohibited", None, None]
    assert causes.open_failures("Warning: Permanently added 'jump'\n") == []


def endpoint(name: str = "m1", host: str = "machine2", port: int = 3999) -> Endpoint:
    return Endpoint("server", name, host, port, "127.0.0.1", 40000)


def test_far_words_name_the_workstation_and_the_target() -> None:
    refused = causes.far_words("refused", endpoint(), "machine1", "Connection refused")
    assert refused.startswith("connection refused at machine1: nothing listens on machine2:3999")
    unknown = causes.far_words("unknown-host", endpoint(host="nosuchhost"), "machine1", "Name or service not known")
    assert unknown.startswith("nosuchhost does not resolve at machine1 (Name or service not known)")
    assert "machine2:3999" in causes.far_words("prohibited", endpoint(), "machine1", "administratively prohibited")


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    path = tmp_path / "p.toml"
    path.write_text(
        '[gateway]\njump = "user1@jump"\nhost = "user1@machine1"\n\n'
        '[[server]]\nname = "m1"\nhost = "machine2"\nport = 3999\n'
        f'custom_user = "bob"\npassword = "file:{tmp_path / "missing-pw"}"\n\n'
        '[[server]]\nname = "m2"\nhost = "machine2"\nport = 4000\n'
    )
    return load_profile(path)


def explain(why: causes.Why, error: Exception, where: Endpoint | None = None) -> str | None:
    return asyncio.run(why.explain(where or endpoint(), error))


def test_a_timeout_may_change_and_is_not_looked_into(profile: Profile, tmp_path: Path) -> None:
    # No master and no agent: any question to the far end would fail; a timeout must not even ask.
    why = causes.Why(profile, {}, Upstreams(), None, tmp_path)
    assert explain(why, TimeoutError()) is None
    assert explain(why, StreamTimeout("no answer")) is None
    assert explain(why, ProtocolError("closed the connection without a reply")) is None  # nothing to ask


def test_a_password_not_read_is_lasting_when_the_server_refuses(profile: Profile, tmp_path: Path) -> None:
    why = causes.Why(profile, {}, Upstreams(), None, tmp_path)
    refused = ServerError("[ authentication failed ] User 'bob' is not allowed any access.")
    said = explain(why, refused)
    assert said is not None
    assert f"its password (file:{tmp_path / 'missing-pw'}) was not read" in said and "does not exist" in said
    # Read, and still refused: the server refuses this user, which waiting does not change either.
    read = causes.Why(profile, {"m1": "secret"}, Upstreams(), None, tmp_path)
    said = explain(read, refused)
    assert said is not None and "refuses the request" in said and "secret" not in said
    # Any other error from the server is not a refusal of the user.
    assert explain(why, ServerError("[ something else ]")) is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_far_side_agents_answer(profile: Profile, tmp_path: Path) -> None:
    """Through the agent (run locally here): its OPEN, waited for, says refused or unknown host."""
    io = LoopThread("test-agent")
    try:
        agent = io.run(start(), 60)
        try:
            why = causes.Why(profile, {}, Upstreams(agent=agent), io, tmp_path)
            closed = ProtocolError("closed the connection without a reply")
            refused = explain(why, closed, endpoint(host="127.0.0.1", port=free_port()))
            assert refused is not None and refused.startswith("connection refused at machine1"), refused
            unknown = explain(why, closed, endpoint(host="nosuchhost.invalid", port=4141))
            assert unknown is not None and unknown.startswith("nosuchhost.invalid does not resolve at machine1 ("), (
                unknown
            )
            # Something listens there now: it may answer, nothing lasting.
            with socket.socket() as listening:
                listening.bind(("127.0.0.1", 0))
                listening.listen(1)
                assert explain(why, closed, endpoint(host="127.0.0.1", port=listening.getsockname()[1])) is None
        finally:
            io.run(agent.close(), 10)
    finally:
        io.stop()
