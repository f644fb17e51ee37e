"""The ecFlow client protocol in pure Python: framing, commands, the NET definition parser and the node tree."""

from __future__ import annotations

from ecflow_remote.errors import DefsParseError, PasswordEncodingError, ProtocolError, ServerError, UnknownNode

from .client import AsyncEcflowClient, EcflowClient, login_name
from .commands import Identity, crypt_password
from .defs import ALIAS, FAMILY, SUITE, TASK, Defs, Node, parse_defs, parse_node

__all__ = [
    "ALIAS",
    "FAMILY",
    "SUITE",
    "TASK",
    "AsyncEcflowClient",
    "Defs",
    "DefsParseError",
    "EcflowClient",
    "Identity",
    "Node",
    "PasswordEncodingError",
    "ProtocolError",
    "ServerError",
    "UnknownNode",
    "crypt_password",
    "login_name",
    "parse_defs",
    "parse_node",
]
