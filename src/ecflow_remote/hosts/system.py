"""The system hosts file, where a private view is impossible: one marked block, atomic, backed up, removed on down.

Launched programs normally see the Centre's names in a private hosts view (programs.py: a mount namespace, Linux
only). Where the platform gives none (macOS; Linux with mount/user namespaces refused) and the profile opts in
(`gateway.system_hosts = true`), the supervisor adds the names to the system file instead, as one block per
tunnel:

    # >>> ecflow-remote 1a2b3c4d5e >>>
    # managed by ecflow-remote for ... : removed by `ecflow-remote down`; do not edit
    127.77.5.1	machine1
    # <<< ecflow-remote 1a2b3c4d5e <<<

The tag is the tunnel's run-directory key (one per profile), so several profiles' blocks coexist and a later
`up`/`down` finds the block a killed supervisor left. Every change is atomic (a temp file in the same directory,
fsync, rename, mode and owner kept) and made under an exclusive lock (`<file>.ecflow-remote.lock`, so two tunnels
never lose each other's change); before each change the file without any ecflow-remote block is kept in
`<file>.ecflow-remote.bak`; no byte outside the block is ever changed (line endings and bytes that are not UTF-8
included).

Also a tiny command for doing the same by hand with sudo (the file is root's):
`python -I -m ecflow_remote.hosts.system add|remove TAG [NAME=ADDRESS ...] [--path FILE]` (`-I`: nothing is
imported from the current directory or the environment, as root).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

from ecflow_remote.errors import SystemHostsError
from ecflow_remote.safefile import write_atomic

DEFAULT_PATH: Final = Path("/etc/hosts")
# For tests only: another file to manage instead of /etc/hosts (the test suite must not edit the machine's own).
PATH_ENV: Final = "ECFLOW_REMOTE_SYSTEM_HOSTS"
BACKUP_SUFFIX: Final = ".ecflow-remote.bak"
LOCK_SUFFIX: Final = ".ecflow-remote.lock"
# How long a change waits for another ecflow-remote's change to the same file.
LOCK_WAIT: Final = 10.0
_TAG_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")


def hosts_path() -> Path:
    override = os.environ.get(PATH_ENV)
    return Path(override) if override else DEFAULT_PATH


def begin_marker(tag: str) -> str:
    return f"# >>> ecflow-remote {tag} >>>"


def end_marker(tag: str) -> str:
    return f"# <<< ecflow-remote {tag} <<<"


def backup_path(path: Path) -> Path:
    real = path.resolve()
    return real.with_name(real.name + BACKUP_SUFFIX)


# ------------------------------------------------------------------------------------------------ the block


def _check_tag(tag: str) -> None:
    if not _TAG_RE.fullmatch(tag):
        raise SystemHostsError(f"bad hosts block tag {tag!r}: letters, digits, '.', '_', '-' only")


def block_text(tag: str, mapping: Mapping[str, str], note: str = "", newline: str = "\n") -> str:
    """The block for `mapping` (name -> address), markers included, each line ending with `newline`."""
    _check_tag(tag)
    lines = [begin_marker(tag)]
    note = "".join(ch if ch.isprintable() else "?" for ch in note)
    lines.append(f"# managed by ecflow-remote{' for ' + note if note else ''}: removed by `ecflow-remote down`")
    for name, address in mapping.items():
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise SystemHostsError(f"{address!r} (for {name}) is not an IP address") from None
        if not _NAME_RE.fullmatch(name):
            raise SystemHostsError(f"{name!r} is not a host name")
        lines.append(f"{address}\t{name}")
    lines.append(end_marker(tag))
    return newline.join(lines) + newline


def _find(lines: list[str], tag: str, path: Path) -> tuple[int, int] | None:
    """The block's first and last line index, or None; refuses a half block (its markers edited by hand)."""
    begin, end = begin_marker(tag), end_marker(tag)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == begin]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == end]
    if not starts and not ends:
        return None
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SystemHostsError(
            f"{path}: the ecflow-remote block {tag} has unmatched markers (edited by hand?); remove its lines "
            f"between {begin!r} and {end!r} yourself (the original is in {backup_path(path)})"
        )
    return starts[0], ends[0]


def _read(path: Path) -> str:
    """The file as text, byte for byte: line endings as they are (no universal newlines), and bytes that are not
    UTF-8 kept as surrogates, so writing it back (_encode) gives the same bytes."""
    try:
        return path.read_bytes().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise SystemHostsError(f"cannot read {path}: {e.strerror or e}") from None


def has_block(path: Path, tag: str) -> bool:
    _check_tag(tag)
    return _find(_read(path).splitlines(keepends=True), tag, path) is not None


def tags(path: Path) -> list[str]:
    """The tags of every ecflow-remote block in the file."""
    found = re.findall(r"^# >>> ecflow-remote (\S+) >>>\r?$", _read(path), re.M)
    return [str(t) for t in found]


def shadowed(path: Path, tag: str, mapping: Mapping[str, str]) -> list[str]:
    """Names of `mapping` that a line before our block already maps (the first match wins: ours is not used)."""
    lines = _read(path).splitlines()
    span = _find([line + "\n" for line in lines], tag, path)
    before = lines[: span[0]] if span else lines
    names: set[str] = set()
    for line in before:
        fields = line.split("#", 1)[0].split()
        names.update(fields[1:])
    return [n for n in mapping if n in names]


def add_block(path: Path, tag: str, mapping: Mapping[str, str], note: str = "") -> bool:
    """Put `tag`'s block (replacing an older one, e.g. a killed tunnel's) at the end of `path`.

    Idempotent: an identical block already in place is left alone (no write, so no permission needed). True
    if the file was changed.
    """
    _check_tag(tag)
    with _locked(path):
        text = _read(path)
        lines = text.splitlines(keepends=True)
        newline = _newline(lines)
        block = block_text(tag, mapping, note, newline)
        span = _find(lines, tag, path)
        if span is not None:
            # The same entries (whatever the comment says: it may have been added by hand with sudo) is in place.
            if _entries(lines[span[0] : span[1] + 1]) == _entries(block.splitlines(keepends=True)):
                return False
            del lines[span[0] : span[1] + 1]
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        _write(path, "".join(lines) + block, text)
        return True


def _newline(lines: list[str]) -> str:
    """The file's own line ending: CRLF when its first line has one (a file edited on Windows), else LF."""
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def _entries(lines: list[str]) -> list[str]:
    return [line.rstrip("\r\n") for line in lines if not line.startswith("#")]


def remove_block(path: Path, tag: str) -> bool:
    """Remove `tag`'s block; every other line stays as it is. True if there was one."""
    _check_tag(tag)
    with _locked(path):
        text = _read(path)
        lines = text.splitlines(keepends=True)
        span = _find(lines, tag, path)
        if span is None:
            return False
        del lines[span[0] : span[1] + 1]
        _write(path, "".join(lines), text)
        return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for one read-change-write of `path` (the file itself is replaced by rename, so the lock
    is a file of its own beside it, root's like the directory). Who cannot make or open it cannot write the file
    either: they go on unlocked, to find the block in place or be refused with the sudo command."""
    real = path.resolve()
    try:
        fd = os.open(
            real.with_name(real.name + LOCK_SUFFIX),
            os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
            0o600,
        )
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemHostsError(
                        f"{path} is being changed by another ecflow-remote for more than {LOCK_WAIT:g}s; try again "
                        f"(if none runs, remove {real.name + LOCK_SUFFIX})"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ atomic writing


def sudo_hint(path: Path, tag: str, mapping: Mapping[str, str] | None) -> str:
    """The command that does the same change as root."""
    where = "" if path == DEFAULT_PATH else f" --path {path}"
    # -I: as root, nothing may be imported from the current directory (a planted package would run as root), nor
    # from PYTHON* variables or the user's site directory.
    command = f"sudo {sys.executable} -I -m ecflow_remote.hosts.system"
    if mapping is None:
        return f"{command} remove {tag}{where}"
    pairs = " ".join(f"{name}={address}" for name, address in mapping.items())
    return f"{command} add {tag} {pairs}{where}"


class _NotWritable(SystemHostsError):
    pass


def _writable(path: Path) -> bool:
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _write(path: Path, text: str, original: str) -> None:
    real = path.resolve()  # macOS: /etc is a symlink to /private/etc; replace the file, not the link
    if not _writable(real):
        raise _NotWritable(f"cannot write {path} (permission denied)")
    if real.exists():
        # Before each change: the file as it is now without any ecflow-remote block (so the user's own later
        # edits are in it, and restoring it never brings back a stale block).
        _replace(backup_path(path), _without_blocks(original), real)
    _replace(real, text, real if real.exists() else None)


def _without_blocks(text: str) -> str:
    lines = text.splitlines(keepends=True)
    for tag in dict.fromkeys(re.findall(r"^# >>> ecflow-remote (\S+) >>>\r?$", text, re.M)):
        with contextlib.suppress(SystemHostsError):  # a half block edited by hand: kept as it is
            span = _find(lines, tag, Path())
            if span is not None:
                del lines[span[0] : span[1] + 1]
    return "".join(lines)


def _replace(target: Path, text: str, like: Path | None) -> None:
    try:
        write_atomic(target, text.encode("utf-8", errors="surrogateescape"), like=like)
    except PermissionError:
        raise _NotWritable(f"cannot write {target} keeping its owner (permission denied)") from None


def add(path: Path, tag: str, mapping: Mapping[str, str], note: str = "") -> bool:
    """add_block, with a refusal that gives the sudo command when the file is not writable."""
    try:
        return add_block(path, tag, mapping, note)
    except _NotWritable as e:
        raise SystemHostsError(
            f"{e}: system_hosts adds the Centre's names to it. Add them once as root: "
            f"{sudo_hint(path, tag, mapping)} and run `ecflow-remote up` again (it finds the block in place); "
            "or use the local method"
        ) from None
    except OSError as e:
        raise SystemHostsError(f"cannot write {path}: {e.strerror or e}") from None


def remove(path: Path, tag: str) -> bool:
    try:
        return remove_block(path, tag)
    except _NotWritable as e:
        raise SystemHostsError(f"{e}: remove ecflow-remote's block as root: {sudo_hint(path, tag, None)}") from None
    except OSError as e:
        raise SystemHostsError(f"cannot write {path}: {e.strerror or e}") from None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecflow_remote.hosts.system", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["add", "remove", "show"])
    parser.add_argument("tag")
    parser.add_argument("pairs", nargs="*", metavar="NAME=ADDRESS")
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args(argv)
    path = args.path or hosts_path()
    try:
        if args.action == "add":
            mapping = dict(p.split("=", 1) for p in args.pairs if "=" in p)
            if not mapping or len(mapping) != len(args.pairs):
                parser.error("give NAME=ADDRESS pairs")
            changed = add_block(path, args.tag, mapping, "by hand")
            print(f"{path}: block {args.tag} {'added' if changed else 'already in place'}")
        elif args.action == "remove":
            changed = remove_block(path, args.tag)
            print(f"{path}: block {args.tag} {'removed' if changed else 'not present'}")
        else:
            print(f"{path}: {'has' if has_block(path, args.tag) else 'has no'} block {args.tag}")
    except (SystemHostsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
