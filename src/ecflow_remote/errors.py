"""The one exception family of ecflow-remote, as a tree: every error a user can meet says what happened and what
to do, and sits under one kind a caller can catch (ConfigError, AccessError, NetworkError, ProtocolError,
ServiceError, DataError, MachineError, TunnelError). The command line's exit code is the CLI's (cli/problems.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class EcflowRemoteError(Exception):
    """Base of every error ecflow-remote raises on purpose; the CLI prints it as one line."""


# ------------------------------------------------------------------------------------------ the kinds


class ConfigError(EcflowRemoteError):
    """What the user wrote or gave cannot be used (a profile, a value, ecflow_ui's server list): fix it."""


class AccessError(EcflowRemoteError):
    """Who the user is could not be shown: a password, its encoding, the certificate."""


class NetworkError(EcflowRemoteError):
    """A connection could not be made, kept, or was not answered in time (TCP, SOCKS, the far-side agent)."""


class ProtocolError(EcflowRemoteError):
    """The peer sent bytes that are not an ecFlow reply (wrong port, a proxy's banner, a cut-off message)."""


class ServiceError(EcflowRemoteError):
    """A Centre service (an ecFlow server, a log server) answered, but not with what was asked."""


class DataError(EcflowRemoteError):
    """What a server sent, or the user asked about, cannot be read: a definition, an expression, a node path."""


class MachineError(EcflowRemoteError):
    """This machine cannot do what is asked: a port taken, the hosts file, OpenSSH, a program to start."""


class TunnelError(EcflowRemoteError):
    """The tunnel could not be brought up, or is not running."""


# ------------------------------------------------------------------------------------------ each kind's errors


class UiError(MachineError):
    """ecflow_ui cannot be prepared or started through the tunnel."""


class UiConfigError(ConfigError):
    """ecflow_ui's server list cannot be read or written; names the file and line."""

    def __init__(self, message: str, *, path: Path, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}"


class OutputError(ServiceError):
    """The job output could not be read completely."""


class ProfileError(ConfigError):
    """A profile that cannot be used: says which file, line and key, what is wrong and what to do."""

    def __init__(
        self, message: str, *, path: Path | None = None, key: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.key = key
        self.line = line

    def __str__(self) -> str:
        parts: list[str] = []
        if self.path is not None:
            where = display_path(self.path)
            parts.append(f"{where}:{self.line}" if self.line is not None else where)
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)


class PasswordError(AccessError):
    """A custom user's password could not be read; the message never contains the secret."""


class PasswordWarning(UserWarning):
    """A one-shot command goes on without a password it could not read; the command line prints the warning."""


class CertificateFetched(UserWarning):
    """A TLS server's certificate was missing at home and was copied from the workstation (said once)."""


class UnknownServer(ConfigError, KeyError):
    """No server by that name in the tunnel's plan (the profile's, or one that joined); names the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such server"


class InitError(ConfigError):
    """A value given to `ecflow-remote init` cannot go into a profile."""


class LaunchError(MachineError):
    """A program could not be started through the tunnel."""


class RunDirError(TunnelError):
    """The run directory cannot be used safely (a link, another account's, open to others); says what to do."""


class AlreadyRunning(TunnelError):
    """A tunnel for this profile is already up: the second `up` reports it instead of fighting it."""


class CertificateError(AccessError):
    """The certificate cannot be renewed from here (no login command), or the login command failed."""


class SystemHostsError(MachineError):
    """The system hosts file cannot be changed as asked (not writable, or its markers were edited by hand)."""


class PortInUse(MachineError):
    """A local port the tunnel needs is taken."""


class NoAddressLeft(MachineError):
    """A Centre host has no loopback address: the profile's range is full, or (macOS) its alias is not on lo0."""


class LogServerError(ServiceError):
    """The log server could not give what was asked."""


class LogFileUnavailable(LogServerError):
    """The log server sent nothing: the file is missing, unreadable, or outside its LOGPATH."""


class TruncatedOutput(LogServerError):
    """The connection closed before the whole file arrived; a partial file is never returned."""


class ConnectError(NetworkError):
    """A TCP connection (direct or through the SOCKS proxy) could not be made."""

    def __init__(self, message: str, *, host: str, port: int, proxy: tuple[str, int] | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.proxy = proxy


class StreamTimeout(NetworkError):
    """The peer accepted the connection but did not answer in time."""


class ServerError(ServiceError):
    """The server answered with an ErrorCmd; the message is the server's text, verbatim."""

    def __init__(self, server_text: str, where: str = "") -> None:
        self.server_text = server_text
        self.where = where
        prefix = f"ecFlow server {where} answered with an error: " if where else ""
        super().__init__(prefix + server_text)


class PasswordEncodingError(AccessError):
    """The password cannot be encoded the way ecFlow needs."""


class DefsParseError(DataError):
    """The definition text could not be read as ecFlow's NET style."""


class SubstitutionError(DataError):
    """%VARIABLE% substitution runs away (variables that refer to themselves); names the node."""


class UnknownNode(DataError, KeyError):
    """No node at that path in the tree that was fetched."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such node"


class NoReply(ProtocolError):
    """The peer closed the connection before the first byte of a reply (a dead server, or one that speaks TLS)."""


class ProtocolMismatch(ProtocolError):
    """The server speaks another protocol (TLS, HTTP) than the one the profile says."""


class ServerCertificateError(ProtocolError):
    """A TLS server's certificate is missing at home, unreadable, or not the one the server presents."""


class ReplyTooLarge(ProtocolError):
    """A peer announced or sent more than the client's limit for one reply (a size from the network is a claim)."""


class LogReplyTooLarge(ReplyTooLarge, LogServerError):
    """A log server listed or sent more than the client keeps for one reply."""


class SshMissing(MachineError):
    """No OpenSSH client on PATH."""


def size_words(size: int) -> str:
    """A byte limit as people read it: `256 MiB`, or the bytes when it is not a whole number of MiB."""
    return f"{size >> 20} MiB" if size >= 1 << 20 and not size % (1 << 20) else f"{size} bytes"


def display_path(path: Path) -> str:
    # Users recognise their home as "~"; the full path adds nothing but noise.
    text = str(path)
    home = os.path.expanduser("~")
    if home not in ("", "/", "~") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


class NodeActionError(ServiceError):
    """The server did not do a node action; the message names the server, the action and the path(s)."""

    def __init__(self, server: str, action: str, paths: Sequence[str], reason: str, server_text: str = "") -> None:
        self.server = server
        self.action = action
        self.paths = tuple(paths)
        self.server_text = server_text
        self.reason = reason
        super().__init__(f"ecFlow server {server}: {action} {' '.join(self.paths)}: {reason}")


class UnknownPath(NodeActionError):
    """The server has no node at these paths (it still did the action on the paths it has)."""


class ActionRefused(NodeActionError):
    """The server refused the user (white list, password, read-only access)."""


class ServerDown(NodeActionError):
    """The server could not be reached, dropped the connection or did not answer in time."""


class ExpressionError(DataError):
    """The expression is not one this evaluator can read."""


class AgentError(NetworkError):
    """The agent could not be started or used."""


class AgentUnavailable(AgentError):
    """The far side cannot run the agent (no python3 >= 3.6): use plain OpenSSH forwards instead."""


class AgentDied(AgentError):
    """The agent session ended (ssh exited, the agent died, the link is dead, or it was closed)."""


class AgentOpenError(AgentError):
    """The far side could not connect to the target."""

    def __init__(self, message: str, *, code: str, host: str, port: int) -> None:
        super().__init__(message)
        self.code = code
        self.host = host
        self.port = port
