"""How the agent gets to the far side: a short remote command that reads the program from ssh's stdin and runs it."""

from __future__ import annotations

import ast
import functools
import json
import secrets
import shlex
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Tried in order; a python3 older than 3.6 makes the search go on to the next one.
PYTHONS = ("python3", "/usr/libexec/platform-python", "/usr/bin/python3")
EXIT_SHORT_PAYLOAD = 95
EXIT_OLD_PYTHON = 96
EXIT_NO_PYTHON = 97

# Runs on the far side's python3 as `python3 -c`: check the version before touching stdin (so the next
# candidate still finds the whole payload), then read exactly the payload's bytes with os.read (a buffered
# reader would swallow the frames behind it), and run it.
_BOOT = """import os,sys,zlib
if sys.version_info<(3,6):sys.exit({old})
n={n};b=b''
while len(b)<n:
 c=os.read(0,n-len(b))
 if not c:sys.exit({short})
 b+=c
exec(compile(zlib.decompress(b),'ecflow-remote-agent','exec'))
"""


# The far-side program's modules, each after those it imports from.
FAR_MODULES = ("frames", "pace", "channel", "mux", "far")
PACKAGE = __name__.rpartition(".")[0]
# ecflow-remote itself: the far side has none of it (frames.py takes its error base from it on the laptop only).
ROOT = __name__.partition(".")[0]


@functools.cache
def far_source() -> str:
    """The far-side program: the modules the local side imports, as one script without their imports of each other.

    Made once per process (parsing the modules takes ~25 ms): the supervisor makes it while the jump host logs in."""
    here = Path(__file__).parent
    return "\n".join(_without_package_imports((here / f"{name}.py").read_text()) for name in FAR_MODULES)


def _without_package_imports(source: str) -> str:
    # Each statement becomes `pass` (same indentation, same line count): one under `if TYPE_CHECKING:` would
    # otherwise leave an empty block. The names it imported are defined earlier in the same script.
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or _ours(node.module or "")):
            first = node.lineno - 1
            indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
            lines[first : node.end_lineno or node.lineno] = [indent + "pass"] + [""] * (
                (node.end_lineno or node.lineno) - node.lineno
            )
        elif isinstance(node, ast.Import) and any(alias.name.startswith(PACKAGE) for alias in node.names):
            raise ValueError(f"far-side module imports {PACKAGE} as a module: use `from ... import` instead")
    return "\n".join(lines) + "\n"


def _ours(module: str) -> bool:
    return module == ROOT or module.startswith(ROOT + ".")


@dataclass(frozen=True)
class Bootstrap:
    """One agent start: the remote command for ssh, the payload to write to its stdin, the start marker."""

    command: str
    payload: bytes
    marker: bytes

    @classmethod
    def new(cls, config: dict[str, Any], pythons: Sequence[str] = PYTHONS) -> Bootstrap:
        marker = "ECFR-AGENT-" + secrets.token_hex(16)
        program = far_source() + f"\nfar_main(json.loads({json.dumps({**config, 'marker': marker})!r}))\n"
        payload = zlib.compress(program.encode(), 6)  # 1 % larger than 9, 2.5x faster
        return cls(remote_command(len(payload), pythons), payload, marker.encode())


def remote_command(payload_size: int, pythons: Sequence[str] = PYTHONS) -> str:
    """`sh -c '…'` that finds a python3 >= 3.6 and starts the bootstrap, or exits EXIT_NO_PYTHON.

    `-I -S`: the workstation's PYTHON* variables, user site and site-packages stay out (standard library only),
    and start-up is faster. Shell-neutral: the login shell (sh, bash, zsh, even csh) only sees one single-quoted
    word for `sh -c`, and the Python code inside is a tuple of byte values, so it needs no quoting at all."""
    boot = _BOOT.format(old=EXIT_OLD_PYTHON, short=EXIT_SHORT_PAYLOAD, n=payload_size).encode()
    code = f"exec(bytes(({','.join(str(b) for b in boot)},)))"
    for python in pythons:
        if not python or any(c in python for c in "'\"$`\\ ;&|<>()"):
            raise ValueError(f"unusable python path for the agent: {python!r}")
    script = (
        f"for p in {' '.join(pythons)}; do "
        'if command -v "$p" >/dev/null 2>&1; then '
        f'"$p" -I -S -c "{code}"; r=$?; [ $r -eq {EXIT_OLD_PYTHON} ] || exit $r; fi; done; '
        f'echo "ecflow-remote agent: no python3 >= 3.6 (tried {" ".join(pythons)})" >&2; exit {EXIT_NO_PYTHON}'
    )
    return "sh -c " + shlex.quote(script)


def control_session_argv(
    ssh: str, control_path: str | Path, destination: str, options: Sequence[str] = ()
) -> list[str]:
    """ssh argv (without the remote command) for the agent as a second session of a leg's ControlMaster.

    The master's first session holds the pty that makes OpenSSH turn Nagle off for the connection; the agent
    cannot run on a pty (it would mangle the frames), so it runs beside it: no pty, no forwardings, no X11 or
    agent forwarding, never a master of its own."""
    return [
        ssh,
        "-S",
        str(control_path),
        "-o",
        "ControlMaster=no",
        "-o",
        "ClearAllForwardings=yes",
        "-T",
        "-x",
        "-a",
        *options,
        destination,
    ]
