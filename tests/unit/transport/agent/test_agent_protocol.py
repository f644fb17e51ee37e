"""The far program stays runnable on python3 3.6, standard library only; the compression policy; the ssh argv."""

from __future__ import annotations

import ast
import random
import shlex
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ecflow_remote.transport.agent import Bootstrap, bootstrap, control_session_argv, frames, remote_command
from ecflow_remote.transport.agent.bootstrap import _BOOT, FAR_MODULES, _without_package_imports, far_source

HERE = Path(bootstrap.__file__).parent
# Every module that is shipped to the far side, and the local ones that share its constants.
SHIPPED = [HERE / f"{name}.py" for name in FAR_MODULES]
# Newer than 3.6, and easy to slip in: each would break the agent on a RHEL 8 workstation.
TOO_NEW = {"run", "get_running_loop", "create_task", "timeout", "to_thread", "current_task", "all_tasks"}


def parses_as_3_6(source: str) -> subprocess.CompletedProcess[str]:
    # In a fresh interpreter: CPython 3.11.2's AST validation can fail spuriously ("recursion depth mismatch")
    # in a process that has run asyncio tests before.
    check = "import ast, sys; ast.parse(sys.stdin.read(), feature_version=(3, 6))"
    return subprocess.run([sys.executable, "-c", check], input=source, capture_output=True, text=True)


def test_far_program_parses_as_python_3_6() -> None:
    boot = Bootstrap.new({"window": 1 << 20})
    program = zlib.decompress(boot.payload).decode()
    for source in (program, _BOOT.format(old=96, short=95, n=1)):
        assert parses_as_3_6(source).returncode == 0, parses_as_3_6(source).stderr
    # The check does catch newer syntax.
    assert "SyntaxError" in parses_as_3_6("if (n := 1): pass").stderr


def test_far_program_uses_the_standard_library_of_3_6_only() -> None:
    tree = ast.parse(far_source())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.module != "__future__", "from __future__ imports change 3.6 behaviour"
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "asyncio":
            assert node.attr not in TOO_NEW, f"asyncio.{node.attr} is newer than Python 3.6"
    assert imported <= set(sys.stdlib_module_names)
    assert "dataclasses" not in imported


VERMIN = shutil.which("vermin", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(VERMIN is None, reason="vermin missing")
def test_vermin_says_3_6(tmp_path: Path) -> None:
    assert VERMIN
    program = tmp_path / "far_program.py"
    program.write_text(zlib.decompress(Bootstrap.new({}).payload).decode())
    for path in [*SHIPPED, program]:
        done = subprocess.run(
            [VERMIN, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations", str(path)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{path.name}: {done.stdout}{done.stderr}"


def test_every_shipped_module_parses_as_python_3_6_on_its_own() -> None:
    for path in SHIPPED:
        assert parses_as_3_6(path.read_text()).returncode == 0, path.name


def test_far_program_is_the_modules_without_their_imports_of_each_other() -> None:
    program = far_source()
    imports = [node for node in ast.walk(ast.parse(program)) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert imports and not [node for node in imports if "ecflow_remote" in ast.unparse(node)]
    # Dependency order: a module comes after every module it imports from.
    starts = [program.index(path.read_text().splitlines()[0]) for path in SHIPPED]
    assert starts == sorted(starts)
    source = (
        "import os\nfrom typing import TYPE_CHECKING\n"
        "from ecflow_remote.transport.agent.frames import (\n    A,\n    B,\n)\n"
        "if TYPE_CHECKING:\n    from ecflow_remote.transport.agent.mux import Mux\nx = 1\n"
    )
    assert _without_package_imports(source).splitlines() == [
        "import os",
        "from typing import TYPE_CHECKING",
        "pass",
        "",
        "",
        "",
        "if TYPE_CHECKING:",
        "    pass",
        "x = 1",
    ]
    with pytest.raises(ValueError):
        _without_package_imports("import ecflow_remote.transport.agent.frames\n")


@pytest.mark.parametrize(
    ("mode", "since_backlog", "rate", "expected"),
    [
        ("always", 100.0, 1e12, True),
        ("never", 0.0, 1e3, False),
        ("auto", 0.0, 12.5e6, True),  # a 100 Mbit/s link, backlogged now: compress
        ("auto", 0.0, 500e6, False),  # a LAN drains faster than zlib: never a cost there
        ("auto", 5.0, 12.5e6, False),  # slow link but no backlog for a while: the pipe is not the bottleneck
    ],
)
def test_compression_policy(mode: str, since_backlog: float, rate: float, expected: bool) -> None:
    assert frames.should_compress(mode, 1000.0, 1000.0 - since_backlog, rate, frames.COMPRESS_BELOW) is expected


def test_probe_tells_text_from_noise() -> None:
    assert frames.compresses(b"2024-05-01 12:00:00 task /suite/f1/hello complete\n" * 100)
    assert not frames.compresses(random.Random(1).randbytes(8192))
    rng = random.Random(2)
    numbers = " ".join(str(rng.random()) for _ in range(5000)).encode()
    assert frames.compresses(numbers)
    assert not frames.compresses(zlib.compress(numbers, 9))  # already compressed output (a .gz, GRIB)


def test_remote_command_is_one_quoted_shell_word() -> None:
    command = remote_command(1234)
    argv = shlex.split(command)
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3
    assert "1234" in bytes(int(b) for b in argv[2].split("bytes((")[1].split(")")[0].rstrip(",").split(",")).decode()
    with pytest.raises(ValueError):
        remote_command(1, ("python3; rm -rf ~",))


def test_agent_runs_as_a_second_session_of_a_control_master() -> None:
    argv = control_session_argv("ssh", "/run/x/ctl", "user1@machine1", ["-F", "cfg"])
    assert argv[0] == "ssh" and argv[-1] == "user1@machine1"
    assert argv[argv.index("-S") + 1] == "/run/x/ctl"
    assert "ControlMaster=no" in argv and "-T" in argv  # never a master, never a pty
