"""The profile's [web] table: which names the web proxy carries to the Centre (domains) and where it listens."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from typing import Final

from ecflow_remote.profile.model import Profile, WebSettings
from ecflow_remote.profile.values import TableChecker

WEB_KEYS: Final = ("domains", "port")
# Shell patterns as PAC's shExpMatch reads them: letters, digits, '.', '-', '_' and the wildcards '*' and '?'
# ('[' sets would mean different things to fnmatch and to a browser's PAC engine, so they are refused).
_PATTERN_RE: Final = re.compile(r"[a-z0-9*?_][a-z0-9*?._-]*")
_MAX_PATTERN: Final = 253


def pattern_problem(value: object) -> str | None:
    """Why `value` cannot be a [web] domains entry, or None."""
    if not isinstance(value, str):
        return 'each entry must be a string: a host name or a pattern such as "*.ecmwf.int".'
    if not value or len(value) > _MAX_PATTERN:
        return "an entry is empty or longer than 253 characters."
    if not _PATTERN_RE.fullmatch(value.lower()):
        return (
            f"{value!r} is not a host name or pattern: use letters, digits, '.', '-', '_' and the wildcards '*' "
            "and '?' only."
        )
    if value.strip("*.?") == "":
        return f'{value!r} would send every name to the Centre: name its domains, like "*.ecmwf.int".'
    return None


def check_web(checker: TableChecker, data: dict[str, object]) -> WebSettings:
    """The [web] table, checked; WebSettings() when there is none."""
    table = checker.get_table(data, "web")
    if table is None:
        return WebSettings()
    checker.check_keys(table, WEB_KEYS, "web", None)
    port = checker.get_port(table, "port", "web", None, 0) if "port" in table else None
    if "domains" not in table:
        return WebSettings(port=port)
    value = table["domains"]
    if not isinstance(value, list):
        checker.fail('expected an array of names, like ["*.ecmwf.int", "jupyterhub"].', "web", None, "domains")
    patterns: list[str] = []
    for item in value:
        problem = pattern_problem(item)
        if problem:
            checker.fail(problem, "web", None, "domains")
        assert isinstance(item, str)
        if item.lower() not in patterns:
            patterns.append(item.lower())
    if not patterns:
        checker.fail("is empty: name the Centre's domains, or remove the key for the default.", "web", None, "domains")
    return WebSettings(domains=tuple(patterns), port=port)


def default_domains(profile: Profile) -> tuple[str, ...]:
    """The Centre's names when [web] domains is not given: every host the profile names (jump hosts, the
    workstation, servers, log servers), a dotted one as its whole domain (machine1.ecmwf.int: *.ecmwf.int)."""
    hosts = [t.host for t in profile.gateway.jump] + [profile.gateway.host.host, *profile.centre_hosts()]
    found: dict[str, None] = {}
    for host in (h.lower().rstrip(".") for h in hosts):
        if host == "localhost" or _is_address(host):
            continue
        _, dot, domain = host.partition(".")
        # A name with one dot (ecmwf.int) is itself the domain; with more, its parent is (a.ecmwf.int: *.ecmwf.int).
        found.setdefault(f"*.{domain}" if dot and "." in domain else host, None)
        if dot and "." not in domain:
            found.setdefault(f"*.{host}", None)
    return tuple(found)


def domains(profile: Profile) -> tuple[str, ...]:
    """The names the web proxy carries: [web] domains, else the profile's own (default_domains)."""
    return profile.web.domains if profile.web.domains is not None else default_domains(profile)


def is_centre_name(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether `host` is one of the Centre's names (as the PAC decides: shell patterns, case-insensitive)."""
    name = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
