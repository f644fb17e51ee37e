"""Whether a file that makes ecflow-remote run commands or send a secret (the profile, its ssh_config, a password
file) can be trusted, by OpenSSH's rules: yours (or root's), writable by no one else, in directories likewise."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Final

from ecflow_remote.errors import ProfileError, display_path
from ecflow_remote.safepath import FileProblem, account, check_path, directories_problem, file_problem, read_checked

MAX_PROFILE_BYTES: Final = 1024 * 1024


def _fix(problem: FileProblem, path: Path, runs: str) -> str:
    """The one line for an untrusted file or directory: what is wrong, why it matters, what to do."""
    shown = display_path(path)
    if problem.kind == "directory":
        fix = f"keep the file in a directory of your own (mkdir -m 700 ~/somewhere && cp {shown} ~/somewhere/)"
        return f"{problem.text}, and {runs}: {fix}"
    if problem.kind == "owner":
        owner = account(problem.uid) if problem.uid is not None else "another account"
        return (
            f"belongs to another account, {owner}, and {runs}: use a copy of your own "
            f"(cp {shown} ~/{path.name} && chmod 600 ~/{path.name})"
        )
    if problem.kind == "writable":
        return f"{problem.text}, and {runs}: chmod go-w {shown}"
    return problem.text


def untrusted_problem(path: Path, what: str = "") -> str | None:
    """Why another account could change what `path` (a file ssh reads later by its name) makes ecflow-remote run,
    with the fix; None if it cannot. The file and every directory above it are checked (check_path)."""
    problem = check_path(path)
    if problem is None or problem.kind in ("missing", "error"):
        return None  # the reader that opens it says so in its own words
    runs = f"{what} in it runs commands as you" if what else "it makes ecflow-remote run commands as you"
    return _fix(problem, path, runs)


def ssh_config_problem(path: Path) -> str | None:
    """untrusted_problem for an ssh_config and every file it Includes (recursively, as ssh does): ssh reads them
    all later, by name. As OpenSSH resolves them: ~ expanded, a relative path against ~/.ssh (also for a file
    given with -F), globs matched; a file that does not exist is skipped, as ssh skips it."""
    what = "ProxyCommand or LocalCommand"
    return _config_problem(path, what, depth=0)


def _config_problem(path: Path, what: str, depth: int) -> str | None:
    if problem := untrusted_problem(path, what):
        return problem
    if depth >= 16:  # OpenSSH's READCONF_MAX_DEPTH: deeper, ssh itself refuses the config
        return None
    try:
        text = path.read_text(errors="replace")  # safe to read by name now: nobody else can change it
    except OSError:
        return None
    for included in included_files(text):
        if problem := _config_problem(included, what, depth + 1):
            return f"includes {display_path(included)}, which {problem}"
    return None


def included_files(text: str) -> list[Path]:
    """The files the Include lines of ssh_config `text` name, as ssh finds them (readconf.c: ~ expanded, relative
    to ~/.ssh, globs sorted)."""
    import glob
    import re

    found: list[Path] = []
    for line in text.splitlines():
        match = re.match(r"\s*include(?:\s*=\s*|\s+)(.*)", line, re.IGNORECASE)
        if not match:
            continue
        try:
            words = shlex.split(match.group(1), comments=True)
        except ValueError:
            continue  # ssh refuses such a line itself
        for word in words:
            pattern = os.path.expanduser(word)
            if not os.path.isabs(pattern):
                pattern = os.path.join(os.path.expanduser("~/.ssh"), pattern)
            found += [Path(p) for p in sorted(glob.glob(pattern))]
    return found


def read_profile(path: Path) -> bytes:
    """The bytes of the profile at `path`, read once from a descriptor that was checked (read_checked); a
    ProfileError naming the file otherwise."""
    got = read_checked(path, MAX_PROFILE_BYTES)
    if isinstance(got, bytes):
        return got
    if got.kind == "missing":
        raise ProfileError(
            "no profile here. Create one with `ecflow-remote init`, or point --profile "
            "(or $ECFLOW_REMOTE_PROFILE) at yours.",
            path=path,
        )
    if got.kind == "type" and os.path.isdir(path):
        raise ProfileError("is a directory, not a profile file. Give the path of the .toml file.", path=path)
    if got.kind == "big":
        raise ProfileError("is bigger than 1 MiB: not a profile. Check the path.", path=path)
    if got.kind == "denied":
        # chmod is only the owner's to run: another account's profile needs a copy of one's own.
        theirs = f"It belongs to another account ({account(got.uid or 0)}): write your own (`ecflow-remote init`)."
        shown = display_path(path)
        # Either mode is right: a profile holds no secret (a password only says where it comes from), but what
        # hosts and servers one uses may be one's own business.
        mine = (
            f"Make it readable: chmod 600 {shown} (for you alone), or chmod 644 {shown} (for others too: a profile "
            "holds no secret, only where passwords come from)."
        )
        todo = mine if got.uid == os.getuid() else theirs
        raise ProfileError(f"cannot read the profile: permission denied. {todo}", path=path)
    if got.kind == "error":
        raise ProfileError(got.text + ".", path=path)
    raise ProfileError(_fix(got, path, "`login` or `ssh_config` in it runs commands as you"), path=path)


def password_file_problem(path: Path) -> str | None:
    """Why the password file at `path` is refused (yours alone, not a link, in directories others cannot change),
    as `the password file PATH …` with the fix; None if it is fine or missing (its reader names a missing one)."""
    problem = directories_problem(path)
    if problem is None:
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if os.path.islink(path):
            problem = FileProblem("link", "is a symbolic link", path, info.st_uid)
        else:
            problem = file_problem(info, path, private=True)
    if problem is None or problem.kind == "type":
        return None  # not a file at all: left to its reader, which names it for the one server that needs it
    return password_refusal(problem, path)


def password_refusal(problem: FileProblem, path: Path) -> str:
    """The one line that refuses the password file at `path` for `problem`, naming the file and the account."""
    shown = display_path(path)
    if problem.kind == "readable":
        return f"the password file {shown} {problem.text}: refused. Run: chmod 600 {shown}"
    if problem.kind == "link":
        owner = account(problem.uid) if problem.uid is not None else "unknown"
        return f"the password file {shown} {problem.text} (made by {owner}): refused. Name the file itself"
    if problem.kind == "owner":
        return f"the password file {shown} {problem.text}: refused. Keep your own (chmod 600)"
    if problem.kind == "directory":
        return f"the password file {shown} {problem.text}: refused. Keep it in a directory of your own"
    return f"the password file {shown} {problem.text}: refused"


def login_problem(login: str) -> str | None:
    """Why `login` is not a command ecflow-remote can run (it is split as a shell would, without one)."""
    if any(ch in login for ch in "\0\n\r"):
        return "must be one line (a command with its arguments)."
    try:
        words = shlex.split(login)
    except ValueError as exc:
        return f"cannot be split into a command and its arguments ({exc}): close the quote, or remove it."
    if not words:
        return "is empty: give the command that renews your certificate (e.g. tsh login), or remove the key."
    return None
