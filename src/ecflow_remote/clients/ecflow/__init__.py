"""The ecFlow client protocol in pure Python: framing, commands, the NET definition parser and the node tree."""

from __future__ import annotations

from .client import AsyncEcflowClient, EcflowClient, login_name
from .commands import Identity, PasswordError, ServerError, crypt_password
from .defs import ALIAS, FAMILY, SUITE, TASK, Defs, DefsParseError, Node, UnknownNode, parse_defs, parse_node
from .wire import ProtocolError

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
    "PasswordError",
    "ProtocolError",
    "ServerError",
    "UnknownNode",
    "crypt_password",
    "login_name",
    "parse_defs",
    "parse_node",
]
