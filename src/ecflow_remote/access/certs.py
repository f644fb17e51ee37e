"""Certificate lifetime (Teleport's tsh, or the OpenSSH certificate ssh uses) and `login` to renew it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecflow_remote.errors import CertificateError
from ecflow_remote.profile.model import Profile, SshTarget
from ecflow_remote.transport import ssh

# ssh -G and ssh-keygen answer in milliseconds; a hung agent socket must not hang `status` or the supervisor.
TOOL_TIMEOUT = 5.0


@dataclass(frozen=True)
class Certificate:
    """When the certificate the gateway connection uses ends. valid_until None means "forever"."""

    source: str  # "tsh", "file <path>" or "agent"
    valid_until: float | None
    valid_from: float | None = None
    path: str | None = None

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.valid_until is None:
            return None
        return self.valid_until - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        left = self.seconds_left(now)
        return left is not None and left <= 0

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        left = self.seconds_left(now)
        return {
            "valid_until": self.valid_until,
            "seconds_left": None if left is None else round(left, 1),
            "source": self.source,
        }


# ------------------------------------------------------------------------------------------------ parsing


def parse_keygen_validity(text: str) -> tuple[float | None, float | None] | None:
    """(from, to) as epoch seconds from `ssh-keygen -L` output; None values mean unbounded; None if no line."""
    m = re.search(r"^\s*Valid:\s*(.+?)\s*$", text, re.MULTILINE)
    if not m:
        return None
    value = m.group(1)
    if value == "forever":
        return None, None
    # ssh-keygen prints local time without a zone: "from 2024-05-01T10:00:00 to 2024-05-01T22:00:00",
    # "after ..." or "before ...".
    start = re.search(r"(?:from|after)\s+(\S+)", value)
    end = re.search(r"(?:to|before)\s+(\S+)", value)
    return (_local_time(start.group(1)) if start else None, _local_time(end.group(1)) if end else None)


def _local_time(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def parse_tsh_status(text: str) -> float | None:
    """active.valid_until of `tsh status --format=json` (RFC 3339) as epoch seconds; None if absent."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    active = data.get("active") if isinstance(data, dict) else None
    value = active.get("valid_until") if isinstance(active, dict) else None
    if not isinstance(value, str):
        return None
    # Go prints nanoseconds and "Z"; fromisoformat (3.11) takes at most microseconds.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------ finding


def uses_tsh(profile: Profile) -> bool:
    """tsh is installed and is the way this profile logs in (its login command, or none given)."""
    if shutil.which("tsh") is None:
        return False
    login = profile.gateway.login
    if not login:
        return True
    parts = shlex.split(login)
    return bool(parts) and Path(parts[0]).name == "tsh"


def find(profile: Profile, settings: dict[str, list[str]] | None = None) -> Certificate | None:
    """The certificate the gateway connection uses, or None when none is found. `settings`: ssh -G's for the first
    hop, when the caller has them already."""
    if uses_tsh(profile):
        cert = _from_tsh()
        if cert is not None:
            return cert
    return _from_openssh(profile, settings)


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _from_tsh() -> Certificate | None:
    tsh = shutil.which("tsh")
    done = _run([tsh, "status", "--format=json"]) if tsh else None
    if done is None or done.returncode != 0:
        return None
    until = parse_tsh_status(done.stdout)
    return Certificate("tsh", until) if until is not None else None


def certificate_files(settings: dict[str, list[str]]) -> list[Path]:
    """The certificate files ssh uses, in its order: the CertificateFiles when the config names any (ssh then
    loads no IdentityFile's -cert.pub: OpenSSH 9.2, seen with ssh -v), else each IdentityFile's -cert.pub."""
    named = settings.get("certificatefile", [])
    if named:
        paths = [Path(os.path.expanduser(p)) for p in named]
    else:
        paths = [Path(os.path.expanduser(p) + "-cert.pub") for p in settings.get("identityfile", [])]
    return list(dict.fromkeys(p for p in paths if p.is_file()))


def read_certificate_file(path: Path) -> Certificate | None:
    keygen = shutil.which("ssh-keygen")
    done = _run([keygen, "-L", "-f", str(path)]) if keygen else None
    if done is None or done.returncode != 0:
        return None
    validity = parse_keygen_validity(done.stdout)
    if validity is None:
        return None
    return Certificate(f"file {path}", validity[1], validity[0], str(path))


def _from_agent(settings: dict[str, list[str]]) -> list[Certificate]:
    agent = (settings.get("identityagent") or ["SSH_AUTH_SOCK"])[0]
    if agent.lower() == "none":
        return []
    add = shutil.which("ssh-add")
    env_sock = os.environ.get("SSH_AUTH_SOCK")
    if add is None or (agent == "SSH_AUTH_SOCK" and not env_sock):
        return []
    env = dict(os.environ)
    if agent not in ("SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"):
        env["SSH_AUTH_SOCK"] = os.path.expanduser(agent)
    try:
        done = subprocess.run([add, "-L"], capture_output=True, text=True, timeout=TOOL_TIMEOUT, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in done.stdout.splitlines():
        if "-cert-v01@openssh.com" not in line.split(" ", 1)[0]:
            continue
        with tempfile.NamedTemporaryFile("w", suffix="-cert.pub", delete=False) as f:
            f.write(line + "\n")
        try:
            cert = read_certificate_file(Path(f.name))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(f.name)
        if cert is not None:
            found.append(Certificate("agent", cert.valid_until, cert.valid_from))
    return found


def _from_openssh(profile: Profile, settings: dict[str, list[str]] | None = None) -> Certificate | None:
    settings = ssh.settings(profile) if settings is None else settings
    found = [c for c in (read_certificate_file(p) for p in certificate_files(settings)) if c is not None]
    found += _from_agent(settings)
    if not found:
        return None
    # ssh offers them all; the one that lasts longest is the one that keeps working.
    return max(found, key=lambda c: float("inf") if c.valid_until is None else c.valid_until)


def fingerprint(profile: Profile) -> tuple[object, ...]:
    """Changes when the certificate is renewed (a new file, a new agent key, a new tsh session): cheap to poll."""
    if uses_tsh(profile):
        cert = _from_tsh()
        return ("tsh", cert.valid_until if cert else None)
    settings = ssh.settings(profile)
    stamps: list[object] = []
    for path in certificate_files(settings):
        with contextlib.suppress(OSError):
            st = path.stat()
            stamps.append((str(path), st.st_mtime_ns, st.st_size))
    if agent_possible(settings):
        stamps.append(tuple(c.valid_until for c in _from_agent(settings)))
    return tuple(stamps)


def agent_possible(settings: dict[str, list[str]]) -> bool:
    """Whether ssh would ask an agent for keys (a certificate may come from there)."""
    agent = (settings.get("identityagent") or ["SSH_AUTH_SOCK"])[0]
    return agent.lower() != "none" and (agent != "SSH_AUTH_SOCK" or bool(os.environ.get("SSH_AUTH_SOCK")))


# ------------------------------------------------------------------------------------------------ words


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def renew_hint(profile: Profile) -> str:
    command = login_command(profile)
    if command:
        return f"renew it with `ecflow-remote login` (runs `{shlex.join(command)}`)"
    return (
        f'renew it as your site does (Teleport: `tsh login`), or set login = "..." in [gateway] of '
        f"{profile.path} so that `ecflow-remote login` does it"
    )


def problem(profile: Profile, cert: Certificate | None, now: float | None = None) -> str | None:
    """The plain-words reason the gateway would refuse us, if the certificate explains it; else None."""
    parts = _problem_parts(profile, cert, now)
    return f"{parts[0]}: {parts[1]}" if parts else None


def _problem_parts(profile: Profile, cert: Certificate | None, now: float | None) -> tuple[str, str] | None:
    if cert is None:
        return None
    if cert.expired(now):
        assert cert.valid_until is not None
        return f"your SSH certificate expired at {clock(cert.valid_until)} ({cert.source})", renew_hint(profile)
    if cert.valid_from is not None and cert.valid_from > (time.time() if now is None else now):
        return f"your SSH certificate is not valid before {clock(cert.valid_from)} ({cert.source})", "check the clock"
    return None


@dataclass(frozen=True)
class Refusal:
    """Why the gateway refused the login, decided from the certificate and ssh's own message: what, and the fix."""

    # "certificate" (expired, not yet valid), "key" (a file ssh could not use), "no certificate", "user" (a valid
    # certificate), "unknown"
    cause: str
    what: str
    fix: str

    @property
    def text(self) -> str:
        return f"{self.what}: {self.fix}"


_REFUSED = re.compile(r"([^\s@]+)@(\S+): Permission denied \(([^)]*)\)")


def refusal(profile: Profile, cert: Certificate | None, ssh_text: str, now: float | None = None) -> Refusal:
    """The gateway refused us: blame the certificate only when it explains the refusal. A certificate valid for
    hours that is refused means the name it is offered for is wrong (or not among its principals)."""
    m = _REFUSED.search(ssh_text)
    user, host = (m.group(1), m.group(2)) if m else (None, None)
    who = f"{host} refused the login as user {user}" if m else "the gateway refused the login"
    certificate = _problem_parts(profile, cert, now)
    if certificate is not None:
        return Refusal("certificate", *certificate)
    # What ssh really offered: a key or certificate file its config names that it could not use explains a refusal
    # before any user name does (ssh never offered the certificate found here, or had none to offer).
    hops = _hops(profile, user, host)
    resolved = [ssh.settings(profile, hop) for hop in hops]
    problems = [p for settings in resolved for p in ssh.key_problems(settings, ssh_text)]
    identities = [os.path.expanduser(i) for settings in resolved for i in settings.get("identityfile", [])]
    if problems and not _offered(cert, problems, identities):
        first = problems[0]
        config = profile.gateway.ssh_config
        show = f"ssh -G {f'-F {config} ' if config else ''}{hops[0].host if len(hops) == 1 else host or 'HOST'}"
        return Refusal(
            "key",
            f"{who}: ssh had no certificate to offer, since the {first.option} {first.path} {first.why}",
            f"{first.fix} ({first.option} in {config or '~/.ssh/config'}; `{show}` lists the files ssh uses)",
        )
    if cert is None:
        return Refusal("no certificate", f"{who}, and no SSH certificate was found", renew_hint(profile))
    left = cert.seconds_left(now)
    valid = "valid for ever" if left is None else f"valid for {duration(left)} more"
    if user is None:
        return Refusal("unknown", f"{who} although your SSH certificate is {valid}", "run `ecflow-remote doctor`")
    return Refusal(
        "user",
        f"{who} although your SSH certificate is {valid} ({cert.source})",
        f"check the user name in {_refused_key(profile, user, host)} of {profile.path} (is {user!r} your Centre "
        "user name, and one the certificate is issued for?)",
    )


def _hops(profile: Profile, user: str | None, host: str | None) -> list[SshTarget]:
    """The hops ssh may mean by user@host (by host name, else by user name); every hop when it cannot tell."""
    gw = profile.gateway
    hops = [*gw.jump, gw.host]
    for named in ([t for t in hops if t.host == host], [t for t in hops if t.user == user]):
        if len(named) == 1:
            return named
    return hops


def _offered(cert: Certificate | None, problems: list[ssh.KeyProblem], identities: list[str]) -> bool:
    """Whether ssh could offer the certificate found, whatever other files failed: the agent's (or tsh's) always;
    a file's when it loaded, with its private key (an IdentityFile's own -cert.pub: that IdentityFile; else one
    IdentityFile at least)."""
    if cert is None:
        return False
    if cert.path is None:
        return True
    failed = {p.path for p in problems}
    if cert.path in failed:
        return False
    usable = [i for i in identities if i not in failed and Path(i).is_file()]
    key = cert.path.removesuffix("-cert.pub")
    if key != cert.path and key in identities:
        return key in usable
    return bool(usable)


def _refused_key(profile: Profile, user: str, host: str | None) -> str:
    """Which profile key names the hop that refused: by host name, else by user name (ssh reports the address
    when ssh_config gives a HostName)."""
    gw = profile.gateway
    hops = [("gateway.jump", t) for t in gw.jump] + [("gateway.host", gw.host)]
    for keys in ({k for k, t in hops if t.host == host}, {k for k, t in hops if t.user == user}):
        if len(keys) == 1:
            return keys.pop()
    return "gateway.jump or gateway.host"


def warning(profile: Profile, cert: Certificate | None, now: float | None = None) -> str | None:
    """A warning when the certificate ends within gateway.warn_before; None otherwise (or when already expired)."""
    if cert is None:
        return None
    left = cert.seconds_left(now)
    if left is None or left <= 0 or left > profile.gateway.warn_before:
        return None
    assert cert.valid_until is not None
    return f"certificate expires in {duration(left)} (at {clock(cert.valid_until)}): {renew_hint(profile)}"


def summary(profile: Profile, cert: Certificate | None, now: float | None = None, *, hint: bool = True) -> str:
    """One line for status and doctor (hint=False: without the renewal command, when the caller gives it apart)."""
    if cert is None:
        return "no SSH certificate found (ssh -G, agent, tsh)"
    left = cert.seconds_left(now)
    if left is None:
        return f"valid forever ({cert.source})"
    if left <= 0:
        expired = f"EXPIRED at {clock(cert.valid_until or 0)} ({cert.source})"
        return f"{expired}: {renew_hint(profile)}" if hint else expired
    text = f"{duration(left)} left, until {clock(cert.valid_until or 0)} ({cert.source})"
    return text + (" — renew soon" if left <= profile.gateway.warn_before else "")


# ------------------------------------------------------------------------------------------------ login


def login_command(profile: Profile) -> list[str] | None:
    """The profile's login command, or `tsh login` when tsh is installed; None when there is none."""
    if profile.gateway.login:
        return shlex.split(profile.gateway.login)
    tsh = shutil.which("tsh")
    return [tsh, "login"] if tsh else None


def login(profile: Profile) -> int:
    """Run the login command in the foreground, with this terminal (it may ask for a password or a token)."""
    command = login_command(profile)
    if command is None:
        raise CertificateError(
            f'no login command: set login = "..." in [gateway] of {profile.path} (for Teleport: '
            'login = "tsh login --proxy=..."), or renew your SSH certificate as your site does'
        )
    try:
        return subprocess.call(command)
    except FileNotFoundError:
        raise CertificateError(
            f"{command[0]}: command not found (gateway.login in {profile.path}): install it or fix the key"
        ) from None
