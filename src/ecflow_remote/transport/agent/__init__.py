"""The far-side agent: many streams (one round trip each, compressed where it pays) over one ssh session."""

from ecflow_remote.errors import AgentDied, AgentError, AgentOpenError, AgentUnavailable
from ecflow_remote.transport.agent.bootstrap import Bootstrap, control_session_argv, remote_command
from ecflow_remote.transport.agent.channel import Channel
from ecflow_remote.transport.agent.session import AgentOptions, AgentSession

__all__ = [
    "AgentDied",
    "AgentError",
    "AgentOpenError",
    "AgentOptions",
    "AgentSession",
    "AgentUnavailable",
    "Bootstrap",
    "Channel",
    "control_session_argv",
    "remote_command",
]
