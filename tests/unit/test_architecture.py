"""The house's rules, checked on the source: no import cycles, imports down the layers only, rich only in the CLI,
small modules, one meaning per class name, a lean wheel, and an `ecflow-remote --help` that loads neither rich nor
the tunnel."""

from __future__ import annotations

import ast
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "ecflow_remote"
MAX_LINES = 500


@dataclass(frozen=True)
class Import:
    """One import statement (or importlib.import_module call with a literal name) in one module."""

    source: str  # the importing module
    target: str  # the module imported: ecflow_remote.x.y when it is one of ours, else the name as written
    line: int
    in_function: bool
    type_checking: bool

    def where(self, root: Path) -> str:
        """file:line and, when it matters, why the import may hide from a reader."""
        kind = " (TYPE_CHECKING)" if self.type_checking else " (in a function)" if self.in_function else ""
        return f"{_file_of(self.source, root)}:{self.line}{kind}"


def _file_of(module: str, root: Path) -> str:
    base = root / Path(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return str(path.relative_to(root))


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `root`, by dotted name (a package by its __init__.py)."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Walker(ast.NodeVisitor):
    """Collects every import of one module with where it sits: module level, a function, a TYPE_CHECKING block."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.found: list[Import] = []
        self.in_function = 0
        self.type_checking = 0

    def _add(self, target: str, node: ast.stmt | ast.expr) -> None:
        self.found.append(Import(self.module, target, node.lineno, self.in_function > 0, self.type_checking > 0))

    def _ours(self, dotted: str) -> str:
        """The longest prefix of `dotted` that is one of our modules (import a.b.c loads a.b.c), else `dotted`."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in self.known:
                return ".".join(parts[:end])
        return dotted

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(self._ours(alias.name), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join([*base, node.module] if node.module else base)
        else:
            origin = node.module or ""
        for alias in node.names:
            # from x import y: y is module x.y when there is one, else a name defined in x.
            submodule = f"{origin}.{alias.name}"
            self._add(submodule if submodule in self.known else self._ours(origin), node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._add(self._ours(first.value), node)
        self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.in_function += 1
        self.generic_visit(node)
        self.in_function -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.type_checking += 1
        for stmt in node.body:
            self.visit(stmt)
        self.type_checking -= 1
        for stmt in node.orelse:
            self.visit(stmt)


def imports(root: Path, package: str) -> list[Import]:
    """Every import in every module of `package`, module level, inside functions and under TYPE_CHECKING."""
    known = modules(root, package)
    found: list[Import] = []
    for name, path in known.items():
        walker = _Walker(name, path.name == "__init__.py", set(known))
        walker.visit(ast.parse(path.read_text(), filename=str(path)))
        found.extend(walker.found)
    return list(dict.fromkeys(found))  # from x import a, b: one import, not two


def graph(found: list[Import], package: str) -> dict[str, dict[str, list[Import]]]:
    """module -> imported module of ours -> the imports making that edge."""
    edges: dict[str, dict[str, list[Import]]] = {}
    for imp in found:
        if imp.target == package or imp.target.startswith(package + "."):
            edges.setdefault(imp.source, {}).setdefault(imp.target, []).append(imp)
    return edges


def _components(edges: dict[str, dict[str, list[Import]]]) -> list[set[str]]:
    """Strongly connected components (Tarjan, iterative) that hold a cycle: two or more modules, or a self-import."""
    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in edges.get(node, {}):
                        found.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _shortest_path(edges: dict[str, dict[str, list[Import]]], start: str, goal: str, inside: set[str]) -> list[str]:
    before: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for child in sorted(edges.get(node, {})):
            if child in inside and child not in before:
                before[child] = node
                queue.append(child)
    path: list[str] = []
    at: str | None = goal
    while at is not None:
        path.append(at)
        at = before[at]
    return path[::-1]


def cycles(edges: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Cycles covering every edge that lies on one: for each such edge a→b, a→b plus the shortest way back b→…→a.
    Each cycle is [m0, m1, ..., m0], rotated to start at its smallest name, without repeats."""
    seen: set[tuple[str, ...]] = set()
    found: list[list[str]] = []
    for component in _components(edges):
        for source in sorted(component):
            for target in sorted(edges.get(source, {})):
                if target not in component:
                    continue
                loop = [source, *_shortest_path(edges, target, source, component)]  # source, target, ..., source
                ring = loop[:-1]
                first = ring.index(min(ring))
                key = tuple(ring[first:] + ring[:first])
                if key not in seen:
                    seen.add(key)
                    found.append([*key, key[0]])
    return sorted(found)


def describe(cycle: list[str], edges: dict[str, dict[str, list[Import]]], root: Path) -> str:
    """One cycle on one line: the modules, then where each step's import is."""
    steps = itertools.pairwise(cycle)
    where = "; ".join(", ".join(imp.where(root) for imp in edges[a][b]) for a, b in steps)
    return f"{' → '.join(m.removeprefix(PACKAGE + '.') for m in cycle)}   [{where}]"


@pytest.fixture(scope="module")
def ours() -> list[Import]:
    return imports(SRC, PACKAGE)


# ------------------------------------------------------------------------------------------ the walker itself


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_walker_sees_every_kind_of_import_and_finds_the_cycles(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import thing\n",
            "pkg/a.py": "from pkg import b\nthing = 1\n",
            "pkg/b.py": "def f():\n    from pkg.sub import c\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\nelse:\n    import os\n"
            ),
            "pkg/d.py": (
                "import importlib\nimportlib.import_module('pkg.d')\nimport pkg.sub.c as c\nimport rich.console\n"
            ),
        },
    )
    found = imports(tmp_path, "pkg")
    edges = graph(found, "pkg")
    assert sorted((a, sorted(b)) for a, b in edges.items()) == [
        ("pkg", ["pkg.a"]),
        ("pkg.a", ["pkg.b"]),
        ("pkg.b", ["pkg.sub.c"]),
        ("pkg.d", ["pkg.d", "pkg.sub.c"]),
        ("pkg.sub.c", ["pkg.a"]),
    ]
    (in_function,) = edges["pkg.b"]["pkg.sub.c"]
    assert in_function.in_function and not in_function.type_checking
    (hidden,) = edges["pkg.sub.c"]["pkg.a"]
    assert hidden.type_checking and hidden.where(tmp_path) == "pkg/sub/c.py:3 (TYPE_CHECKING)"
    assert {"os", "rich.console", "importlib"} <= {imp.target for imp in found}
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"], ["pkg.d", "pkg.d"]]
    assert describe(cycles(edges)[0], edges, tmp_path).startswith("pkg.a → pkg.b → pkg.sub.c → pkg.a   [pkg/a.py:1;")


def test_two_cycles_through_one_module_are_both_listed(tmp_path: Path) -> None:
    _write(tmp_path, {"p/__init__.py": "", "p/hub.py": "from p import x, y\n", "p/x.py": "import p.hub\n"})
    _write(tmp_path, {"p/y.py": "def f():\n    from p import hub\n"})
    edges = graph(imports(tmp_path, "p"), "p")
    assert cycles(edges) == [["p.hub", "p.x", "p.hub"], ["p.hub", "p.y", "p.hub"]]


# ------------------------------------------------------------------------------------------ the rules


def test_the_walker_reads_our_source(ours: list[Import]) -> None:
    """The rules below can fail: the walk finds our modules and their imports, also those inside functions."""
    assert len(modules(SRC, PACKAGE)) > 20
    assert any(imp.in_function and imp.target.startswith(PACKAGE + ".") for imp in ours)
    assert any(imp.source == f"{PACKAGE}.cli.app" and imp.target == "click" for imp in ours)


def test_no_import_cycles(ours: list[Import]) -> None:
    edges = graph(ours, PACKAGE)
    found = [describe(cycle, edges, SRC) for cycle in cycles(edges)]
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(found)


# The layers, lowest first: a module imports only from its own layer or below. Small shared helpers sit at the
# bottom so that no feature module has to reach up for them; the package root (`__init__`: the version and the lazy
# public API) runs before any module of ours anyway, so any module may take `__version__` from it, and it is the top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "safefile", "safepath", "portowner", "net", "unix", "uiservers"),
    ("profile",),
    ("plan", "endpoints"),
    ("transport", "clients", "hosts"),
    ("access",),
    ("tunnel",),
    ("status", "suites", "output", "doctor", "programs", "browse"),
    ("ui", "web"),
    ("cli",),
    ("__main__", ""),
)


def layer_of(module: str, package: str = PACKAGE) -> int:
    """The layer of one of our modules, by its first name below the package ("" for the package root)."""
    top = module.removeprefix(package).lstrip(".").partition(".")[0]
    for number, names in enumerate(LAYERS):
        if top in names:
            return number
    raise KeyError(f"{module}: in no layer; add it to LAYERS in {Path(__file__).name}")


def up_the_layers(found: list[Import], package: str = PACKAGE) -> list[str]:
    """Every import of ours that goes to a higher layer (the package root excepted: see LAYERS)."""
    return [
        f"{imp.where(SRC)}: {imp.source.removeprefix(package + '.')} → {imp.target.removeprefix(package + '.')}"
        for imp in found
        if imp.target.startswith(package + ".") and layer_of(imp.target, package) > layer_of(imp.source, package)
    ]


def test_every_module_has_a_layer() -> None:
    for name in modules(SRC, PACKAGE):
        layer_of(name)  # raises, naming the module, when it has none


def test_the_layer_rule_can_fail() -> None:
    low, high = f"{PACKAGE}.plan", f"{PACKAGE}.tunnel.handle"
    up = [Import(low, high, 1, in_function=True, type_checking=False)]
    down = [Import(high, low, 1, in_function=False, type_checking=False)]
    assert len(up_the_layers(up)) == 1 and "plan → tunnel.handle" in up_the_layers(up)[0]
    assert not up_the_layers(down)
    assert not up_the_layers([Import(f"{PACKAGE}.cli.app", PACKAGE, 1, in_function=False, type_checking=False)])


def test_imports_go_down_the_layers_only(ours: list[Import]) -> None:
    """Module level, in functions and under TYPE_CHECKING alike: a hidden import up the layers is still one."""
    up = up_the_layers(ours)
    assert not up, f"{len(up)} import(s) up the layers:\n" + "\n".join(up)


TYPE_CHECKING_LEFT = "TYPE_CHECKING imports remain (cli.main, __init__, programs, ...); the lead wants none (#9)"


def test_rich_only_in_the_command_line_layer(ours: list[Import]) -> None:
    outside = [
        f"{imp.where(SRC)}: {imp.target}"
        for imp in ours
        if (imp.target == "rich" or imp.target.startswith("rich."))
        and not (imp.source == f"{PACKAGE}.cli" or imp.source.startswith(f"{PACKAGE}.cli."))
    ]
    assert not outside, "rich outside ecflow_remote/cli/:\n" + "\n".join(outside)


def test_no_module_over_500_lines() -> None:
    sizes = {path: len(path.read_text().splitlines()) for path in sorted(SRC.rglob("*.py"))}
    assert len(sizes) > 20
    long = [f"{path.relative_to(SRC)}: {n} lines" for path, n in sizes.items() if n > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)


class _Classes(ast.NodeVisitor):
    """The public classes a module defines at its top level (also inside an `if` or `try` there)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if not node.name.startswith("_"):
            self.names.append(node.name)  # not generic_visit: a nested class is its class's own

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        pass  # a class made inside a function is that function's own

    visit_FunctionDef = visit_AsyncFunctionDef = _function


def public_classes(root: Path, package: str) -> dict[str, list[str]]:
    """Each public class name -> the modules that define one, as dotted names."""
    found: dict[str, list[str]] = {}
    for name, path in modules(root, package).items():
        walker = _Classes()
        walker.visit(ast.parse(path.read_text(), filename=str(path)))
        for cls in walker.names:
            found.setdefault(cls, []).append(name)
    return found


# Public class names two modules may both define, each with the reason a reader will not confuse them. Empty: each
# name says one thing in the whole package (pipe.PipeServer, not a second `Server` beside profile.model's).
SHARED_CLASS_NAMES: dict[str, str] = {}


def same_names(found: dict[str, list[str]], allowed: dict[str, str]) -> list[str]:
    return [
        f"{cls}: {', '.join(where)}" for cls, where in sorted(found.items()) if len(where) > 1 and cls not in allowed
    ]


def test_the_class_name_rule_can_fail(tmp_path: Path) -> None:
    _write(tmp_path, {"p/__init__.py": "", "p/a.py": "class Route: ...\nclass _Own: ...\n"})
    _write(tmp_path, {"p/b.py": "if True:\n    class Route: ...\ndef f():\n    class Local: ...\n"})
    _write(tmp_path, {"p/c.py": "class _Own: ...\nclass Outer:\n    class Local: ...\n"})
    found = public_classes(tmp_path, "p")
    assert same_names(found, {}) == ["Route: p.a, p.b"]
    assert not same_names(found, {"Route": "why"})


def test_no_two_modules_define_a_public_class_of_the_same_name() -> None:
    found = public_classes(SRC, PACKAGE)
    assert len(found) > 50 and "PipeServer" in found  # the walk reads our classes
    twice = same_names(found, SHARED_CLASS_NAMES)
    assert not twice, "public class names defined in two modules (rename one, or justify in SHARED_CLASS_NAMES):\n" + (
        "\n".join(twice)
    )
    assert not set(SHARED_CLASS_NAMES) - {cls for cls, where in found.items() if len(where) > 1}, "stale allowance"


# ------------------------------------------------------------------------------------------ what users get


def test_wheel_holds_the_package_only(tmp_path: Path) -> None:
    """The wheel has ecflow_remote and its metadata: no simulated Centre, no tests. Built from a copy of the tree,
    so the build's own directories (build/, *.egg-info) never land in the worktree."""
    tree = tmp_path / "tree"
    junk = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, tree, ignore=junk)
    assert (tree / "centre").is_dir() and (tree / "tests").is_dir()  # both there to be left out
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("ecflow_remote-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert f"{PACKAGE}/cli/main.py" in names
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {PACKAGE}
    stray = [n for n in names if {"centre", "tests", "conftest.py"} & set(n.split("/"))]
    assert not stray, stray


def _imported_by_help(tmp: Path) -> tuple[str, set[str]]:
    """`ecflow-remote --help` in a fresh interpreter: its output and every module it imported (-X importtime)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", PACKAGE, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.stdout, loaded


def test_help_loads_neither_rich_nor_the_tunnel() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out, loaded = _imported_by_help(Path(tmp))
    assert "Usage:" in out and "status" in out
    assert f"{PACKAGE}.cli.main" in loaded and "click" in loaded  # the import list is real
    heavy = ("rich", "asyncio", f"{PACKAGE}.tunnel", f"{PACKAGE}.transport", f"{PACKAGE}.access", f"{PACKAGE}.programs")
    loaded_heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy))
    assert not loaded_heavy, f"--help imports {loaded_heavy}"
