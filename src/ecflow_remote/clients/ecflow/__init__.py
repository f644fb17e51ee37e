"""The ecFlow client protocol in pure Python: framing, commands, the NET definition parser and the node tree."""

from __future__ import annotations

from ecflow_remote.errors import (
    ActionRefused,
    DefsParseError,
    NodeActionError,
    PasswordEncodingError,
    ProtocolError,
    ServerDown,
    ServerError,
    UnknownNode,
    UnknownPath,
)

from .actions import DESTRUCTIVE_ACTIONS, NODE_ACTIONS, NodeAction
from .attributes import Attributes, InLimit, Limit, Meter
from .client import AsyncEcflowClient, EcflowClient, login_name
from .commands import Identity, crypt_password
from .defs import ALIAS, FAMILY, SUITE, TASK, Defs, Node, parse_defs, parse_node
from .logservers import LogServerUse, find_logservers, logserver_problems, node_logserver
from .panels import VARIABLE_CHANGES, ZOMBIE_ACTIONS, Zombie
from .sync import NodeChange, WatchUpdate
from .watch import Watch
from .why import why

__all__ = [
    "ALIAS",
    "DESTRUCTIVE_ACTIONS",
    "FAMILY",
    "NODE_ACTIONS",
    "SUITE",
    "TASK",
    "VARIABLE_CHANGES",
    "ZOMBIE_ACTIONS",
    "ActionRefused",
    "AsyncEcflowClient",
    "Attributes",
    "Defs",
    "DefsParseError",
    "EcflowClient",
    "Identity",
    "InLimit",
    "Limit",
    "LogServerUse",
    "Meter",
    "Node",
    "NodeAction",
    "NodeActionError",
    "NodeChange",
    "PasswordEncodingError",
    "ProtocolError",
    "ServerDown",
    "ServerError",
    "UnknownNode",
    "UnknownPath",
    "Watch",
    "WatchUpdate",
    "Zombie",
    "crypt_password",
    "find_logservers",
    "login_name",
    "logserver_problems",
    "node_logserver",
    "parse_defs",
    "parse_node",
    "why",
]
