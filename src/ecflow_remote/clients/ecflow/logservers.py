"""Log servers named by definitions: every (ECF_LOGHOST, ECF_LOGPORT) in use, and the servers and suites using it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ecflow_remote.errors import SubstitutionError

from .defs import Defs, Node


@dataclass(frozen=True)
class LogServerUse:
    """One log server and who points at it: server names as the caller gave them, (server, suite) pairs."""

    host: str
    port: int
    servers: tuple[str, ...]
    suites: tuple[tuple[str, str], ...]


def node_logserver(node: Node) -> tuple[str, int] | None:
    """(host, port) of the log server for a task, by ecflow_ui's rules (VNode::logServer of 5.9.2).

    Both variables are inherited as ecFlow does (own, generated, ancestors, server); ECF_LOGHOST is %-substituted
    and ignored when a '%' is left in it; ECF_LOGPORT is taken as it is and must be a port number."""
    host = node.inherited_variable("ECF_LOGHOST")
    port = node.inherited_variable("ECF_LOGPORT")
    if not host or not port:
        return None
    try:
        host = node.substitute(host) if "%" in host else host
    except SubstitutionError:
        return None  # a runaway value is no host; logserver_problems names the node
    if "%" in host:
        return None
    try:
        number = int(port)
    except ValueError:
        return None
    if not 0 < number < 65536:
        return None
    return host, number


def logserver_problems(defs_by_server: Mapping[str, Defs]) -> list[str]:
    """One line per node whose log server settings cannot be used (a port that is not a number, a host with an
    unresolved %VARIABLE%), so a person can fix the suite."""
    problems: list[str] = []
    for server, defs in defs_by_server.items():
        for node in defs:
            if not node.is_submittable:
                continue
            host = node.inherited_variable("ECF_LOGHOST")
            port = node.inherited_variable("ECF_LOGPORT")
            if not host or not port:
                continue
            if node_logserver(node) is None:
                problems.append(
                    f"{server} {node.path}: ECF_LOGHOST {host!r} / ECF_LOGPORT {port!r} is not a usable log server"
                )
    return problems


def find_logservers(defs_by_server: Mapping[str, Defs]) -> list[LogServerUse]:
    """Every log server the tasks of these definitions use, sorted by host and port."""
    servers: dict[tuple[str, int], list[str]] = {}
    suites: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for server, defs in defs_by_server.items():
        for suite in defs.suites:
            for node in suite.walk():
                if not node.is_submittable:
                    continue
                found = node_logserver(node)
                if found is None:
                    continue
                if server not in servers.setdefault(found, []):
                    servers[found].append(server)
                pair = (server, suite.name)
                if pair not in suites.setdefault(found, []):
                    suites[found].append(pair)
    return [
        LogServerUse(host, port, tuple(servers[(host, port)]), tuple(suites[(host, port)]))
        for host, port in sorted(servers)
    ]
