"""The ecFlow node tree, parsed from the "NET" style definition text a 5.x server sends for `--get`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ecflow_remote.errors import DefsParseError, EcflowRemoteError, SubstitutionError, UnknownNode

from .attributes import Attributes, read_attribute

SUITE = "suite"
FAMILY = "family"
TASK = "task"
ALIAS = "alias"
NODE_KINDS = (SUITE, FAMILY, TASK, ALIAS)
_CONTAINERS = (SUITE, FAMILY)

# Node states as NState::toString writes them; a node in the default state has no `state:` token at all.
STATES = ("unknown", "complete", "queued", "aborted", "submitted", "active")

_ABORT_REASON = re.compile(r"abort<:(.*?)>abort")
# %NAME% or %NAME:default%, as in ecFlow's variable substitution.
_MICRO_REF = re.compile(r"%([^%\s:]+)(?::([^%]*))?%")
# Limits on what a definition from the network may make the client do. Real suites nest a few tens of levels and
# substitute values of a few hundred bytes; these are far above that and far below memory or recursion trouble.
MAX_NODE_DEPTH = 200
MAX_SUBSTITUTED = 1024 * 1024
MAX_SUBSTITUTION_ROUNDS = 20


def _parse_edit(line: str, lineno: int) -> tuple[str, str, bool]:
    """(name, value, is_server_variable) from `edit NAME 'value'[ # server]`.

    ecFlow writes every variable as `edit NAME '<value>'` (Variable::write), so the value is exactly the text
    between the first and the last single quote; this keeps spaces, quotes, '#' and ';' that ecFlow's own
    token-based reader would collapse or cut.
    """
    rest = line[len("edit") :].lstrip()
    name, _, tail = rest.partition(" ")
    if not name:
        raise DefsParseError(f"line {lineno}: 'edit' without a variable name: {line!r}")
    server = False
    stripped = tail.rstrip()
    if stripped.endswith("' # server"):
        server = True
        stripped = stripped[: -len(" # server")]
    tail = stripped.lstrip()
    if len(tail) >= 2 and tail[0] == "'" and tail[-1] == "'":
        return name, tail[1:-1], server
    # Not in the form ecFlow writes: read it as ecFlow's VariableParser would.
    tokens = tail.split()
    words: list[str] = []
    for token in tokens:
        if token.startswith("#"):
            server = server or tokens[tokens.index(token) + 1 :][:1] == ["server"]
            break
        words.append(token)
    value = " ".join(words)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return name, value, server


@dataclass(eq=False)
class Node:
    """One suite, family, task or alias, with its state and its own (user) variables."""

    kind: str
    name: str
    parent: Node | None = field(default=None, repr=False)
    defs: Defs | None = field(default=None, repr=False)
    state: str = "unknown"
    suspended: bool = False
    # ecFlow's late flag (a `late` attribute's limit passed, or set by hand): the only flag modelled.
    late: bool = False
    try_no: int = 0
    rid: str = ""
    # The job password ecFlow generated for this submission: a secret, so never shown.
    jobs_password: str = field(default="", repr=False)
    abort_reason: str = ""
    variables: dict[str, str] = field(default_factory=dict, repr=False)
    children: list[Node] = field(default_factory=list, repr=False)
    attrs: Attributes = field(default_factory=Attributes, repr=False)
    # For a node fetched on its own (SNodeCmd), the path of its parent on the server.
    detached_parent_path: str = field(default="", repr=False)
    _substituting: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def path(self) -> str:
        """The absolute node path, as ecFlow's absNodePath()."""
        if self.parent is not None:
            return f"{self.parent.path}/{self.name}"
        return f"{self.detached_parent_path}/{self.name}"

    @property
    def is_task(self) -> bool:
        return self.kind == TASK

    @property
    def is_submittable(self) -> bool:
        return self.kind in (TASK, ALIAS)

    def ancestors(self) -> Iterator[Node]:
        """Parent, grandparent, … up to the suite."""
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def walk(self) -> Iterator[Node]:
        """This node and everything below it, depth first in definition order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, relative: str) -> Node:
        """The descendant at a path relative to this node (`f1/t1`)."""
        node = self
        for part in (p for p in relative.split("/") if p):
            for child in node.children:
                if child.name == part:
                    node = child
                    break
            else:
                raise UnknownNode(f"no node {part!r} under {node.path}")
        return node

    # ---- variables, looked up the way ecFlow's Node::find_parent_variable_value does ----

    def generated_variables(self) -> dict[str, str]:
        """The variables ecFlow generates for this node; the NET text never carries them, so they are computed."""
        return {name: self._generated_value(name) for name in self._generated_names()}

    def _generated_names(self) -> tuple[str, ...]:
        if self.kind == SUITE:
            # The calendar ones (ECF_DATE, YYYY, …) need the suite clock, which the NET text does not give fully.
            return ("SUITE",)
        if self.kind == FAMILY:
            return ("FAMILY", "FAMILY1")
        return ("TASK", "ECF_JOB", "ECF_SCRIPT", "ECF_JOBOUT", "ECF_TRYNO", "ECF_RID", "ECF_NAME", "ECF_PASS")

    def _generated_value(self, name: str) -> str:
        # SubGenVariables / FamGenVariables / SuiteGenVariables of ecFlow 5.9.2 (ANode/src).
        if name == "SUITE":
            return self.name
        if name == "FAMILY":
            # The path without the suite and without a leading slash.
            return self.path.split("/", 2)[2]
        if name == "FAMILY1":
            return self.name
        path = self.path
        try_no = str(self.try_no)
        if name == "TASK":
            return self.parent.name if self.kind == ALIAS and self.parent is not None else self.name
        if name == "ECF_TRYNO":
            return try_no
        if name == "ECF_RID":
            return self.rid
        if name == "ECF_NAME":
            return path
        if name == "ECF_PASS":
            return self.jobs_password
        ecf_home = self.user_variable("ECF_HOME") or ""
        if name == "ECF_JOB":
            return f"{ecf_home}{path}.job{try_no}"
        if name == "ECF_SCRIPT":
            return f"{ecf_home}{path}{self.user_variable('ECF_EXTN') or '.ecf'}"
        if name == "ECF_JOBOUT":
            ecf_out = self.user_variable("ECF_OUT") or ""
            if "%" in ecf_out and not self._substituting:
                # ecFlow substitutes ECF_OUT ("%ECF_HOME%/out" is common); guard against ECF_OUT naming ECF_JOBOUT.
                self._substituting = True
                try:
                    ecf_out = self.substitute(ecf_out)
                finally:
                    self._substituting = False
            return f"{ecf_out or ecf_home}{path}.{try_no}"
        raise KeyError(name)

    def user_variable(self, name: str) -> str | None:
        """ecFlow's findParentUserVariableValue: own, then ancestors' user variables, then the server's.

        Generated variables are skipped here; this is what ecFlow uses to build ECF_JOB and ECF_JOBOUT.
        """
        if name in self.variables:
            return self.variables[name]
        for node in self.ancestors():
            if name in node.variables:
                return node.variables[name]
        return self._server_value(name)

    def _server_value(self, name: str) -> str | None:
        """The server-level value of `name` (when the tree hangs from a Defs); empty counts as undefined."""
        root = self._root_defs()
        return (root.server_variable(name) or None) if root is not None else None

    def inherited_variable(self, name: str) -> str | None:
        """The value a job of this node sees for `name`: own, generated, each ancestor's, then the server's.

        Same order as ecFlow's Node::find_parent_variable_value; None when no level defines it. An empty
        server-level value counts as undefined, as in ecFlow.
        """
        for node in (self, *self.ancestors()):
            if name in node.variables:
                return node.variables[name]
            if name in node._generated_names():
                return node._generated_value(name)
        return self._server_value(name)

    def effective_variables(self) -> dict[str, str]:
        """Every variable visible from this node with the value that wins, server level first, own last."""
        result: dict[str, str] = {}
        root = self._root_defs()
        if root is not None:
            result.update(root.variables)
        for node in (*reversed(list(self.ancestors())), self):
            result.update(node.generated_variables())
            result.update(node.variables)
        return result

    def substitute(self, text: str, max_rounds: int = MAX_SUBSTITUTION_ROUNDS) -> str:
        """Replace %VAR% and %VAR:default% with this node's inherited values; `%%` stands for one `%`.

        Values that still hold references are substituted again, up to `max_rounds` times; a text that still
        changes after that, or grows past MAX_SUBSTITUTED characters (variables that refer to themselves), raises
        SubstitutionError naming this node."""
        original = text
        for _ in range(max_rounds + 1):
            new = self._substitute_round(text, original)
            if new == text:
                return text.replace("%%", "%")
            text = new
        raise self._runaway(original, f"still changes after {max_rounds} rounds")

    def _substitute_round(self, text: str, original: str) -> str:
        size = len(text)

        def repl(m: re.Match[str]) -> str:
            nonlocal size
            value = self.inherited_variable(m.group(1))
            if value is None:
                value = m.group(2) if m.group(2) is not None else m.group(0)
            # Counted as the pieces are made, so a blow-up stops before the text is built.
            size += len(value)
            if size > MAX_SUBSTITUTED:
                raise self._runaway(original, f"grows past {MAX_SUBSTITUTED} characters")
            return value

        return _MICRO_REF.sub(repl, text.replace("%%", "\0")).replace("\0", "%%")

    def _runaway(self, text: str, how: str) -> SubstitutionError:
        return SubstitutionError(
            f"{self.path}: substituting {text[:80]!r} {how}: its variables refer to themselves; fix the suite "
            "definition"
        )

    def jobout_path(self) -> str:
        """Where this task's job output of the current try is: ECF_JOBOUT as ecFlow computes it.

        An explicit ECF_JOBOUT on the task wins; otherwise it is `<ECF_OUT or ECF_HOME><path>.<try>`,
        with ECF_OUT itself substituted.
        """
        if not self.is_submittable:
            raise EcflowRemoteError(f"{self.path} is a {self.kind}: only tasks and aliases have job output")
        value = self.inherited_variable("ECF_JOBOUT") or ""
        return self.substitute(value) if "%" in value else value

    def logserver(self) -> tuple[str, int] | None:
        """(ECF_LOGHOST, ECF_LOGPORT) when both are set for this node, else None."""
        host = self.inherited_variable("ECF_LOGHOST")
        port = self.inherited_variable("ECF_LOGPORT")
        if not host or not port:
            return None
        try:
            return host, int(port)
        except ValueError:
            raise EcflowRemoteError(
                f"{self.path}: ECF_LOGPORT is {port!r}, not a port number; fix the suite definition"
            ) from None

    def _root_defs(self) -> Defs | None:
        node: Node = self
        while node.parent is not None:
            node = node.parent
        return node.defs


@dataclass(eq=False)
class Defs:
    """A server's whole definition: its variables and its suites."""

    version: str = ""
    state: str = "unknown"
    server_state: str = "RUNNING"
    # The server's change numbers when this text was made: where an incremental sync starts from.
    state_change_no: int = 0
    modify_change_no: int = 0
    # Variables the users set at server level (`edit X 'v'`) and the ones the server defines (`… # server`).
    user_variables: dict[str, str] = field(default_factory=dict)
    server_variables: dict[str, str] = field(default_factory=dict)
    suites: list[Node] = field(default_factory=list, repr=False)

    def server_variable(self, name: str) -> str:
        """ServerState::find_variable: user variables first, then the server's own; '' when neither."""
        if name in self.user_variables:
            return self.user_variables[name]
        return self.server_variables.get(name, "")

    @property
    def variables(self) -> dict[str, str]:
        """Server-level variables with the value that wins (user over server)."""
        return {**self.server_variables, **self.user_variables}

    def __iter__(self) -> Iterator[Node]:
        """Every node, depth first in definition order."""
        for suite in self.suites:
            yield from suite.walk()

    def find(self, path: str) -> Node:
        """The node at an absolute path such as `/lab/f1/t1`."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise UnknownNode(f"{path!r} is not a node path; paths look like /suite/family/task")
        for suite in self.suites:
            if suite.name == parts[0]:
                return suite.find("/".join(parts[1:]))
        raise UnknownNode(f"no suite {parts[0]!r} (suites: {', '.join(s.name for s in self.suites) or 'none'})")


def _read_node_state(node: Node, line: str) -> None:
    # The state comment: `task t # passwd:x rid:1 abort<:reason>abort try:2 state:active flag:… suspended:1`.
    m = _ABORT_REASON.search(line)
    if m:
        node.abort_reason = m.group(1)
        line = line[: m.start()] + line[m.end() :]
    _, hash_, comment = line.partition("#")
    if not hash_:
        return
    for token in comment.split():
        key, colon, value = token.partition(":")
        if not colon:
            continue
        if key == "state":
            node.state = value
        elif key == "suspended":
            node.suspended = value == "1"
        elif key == "flag":
            node.late = "late" in value.split(",")
        elif key == "try":
            try:
                node.try_no = int(value)
            except ValueError:
                raise DefsParseError(f"bad try number {value!r} for {node.path}") from None
        elif key == "rid":
            node.rid = value
        elif key == "passwd":
            node.jobs_password = value


def _read_defs_state(defs: Defs, line: str) -> None:
    for token in line.split()[2:]:
        key, _, value = token.partition(":")
        if key == "state>":
            defs.state = value
        elif key == "server_state":
            defs.server_state = value
        elif key in ("state_change", "modify_change") and value.isdigit():
            setattr(defs, f"{key}_no", int(value))


class _Builder:
    def __init__(self, defs: Defs | None, detached_parent_path: str = "") -> None:
        self.defs = defs
        self.detached_parent_path = detached_parent_path
        self.stack: list[Node] = []
        self.roots: list[Node] = []

    def open_node(self, kind: str, name: str, line: str, lineno: int) -> None:
        if kind == ALIAS:
            # Aliases follow their task; consecutive aliases are siblings, closed together by one `endalias`.
            while self.stack and self.stack[-1].kind == ALIAS:
                self.stack.pop()
            if not self.stack or self.stack[-1].kind != TASK:
                raise DefsParseError(f"line {lineno}: alias {name!r} outside a task")
        else:
            # A task has no end keyword: the next node line closes it.
            while self.stack and self.stack[-1].kind not in _CONTAINERS:
                self.stack.pop()
            if kind == SUITE and self.stack:
                raise DefsParseError(f"line {lineno}: suite {name!r} inside {self.stack[-1].path}")
        if len(self.stack) >= MAX_NODE_DEPTH:
            # The tree is walked recursively afterwards; a hostile or broken reply must not reach Python's limit.
            raise DefsParseError(
                f"line {lineno}: {kind} {name!r} is nested more than {MAX_NODE_DEPTH} levels deep: not a definition "
                "this client accepts"
            )
        parent = self.stack[-1] if self.stack else None
        node = Node(kind, name, parent=parent)
        if parent is None:
            if kind == SUITE and self.defs is not None:
                node.defs = self.defs
            else:
                node.detached_parent_path = self.detached_parent_path
            self.roots.append(node)
        else:
            parent.children.append(node)
        _read_node_state(node, line)
        self.stack.append(node)

    def close(self, kind: str, lineno: int) -> None:
        while self.stack and self.stack[-1].kind != kind:
            self.stack.pop()
        if not self.stack:
            raise DefsParseError(f"line {lineno}: 'end{kind}' without an open {kind}")
        self.stack.pop()


def _parse(text: str, defs: Defs | None, detached_parent_path: str = "") -> list[Node]:
    builder = _Builder(defs, detached_parent_path)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not line:
            continue
        keyword = line.split(None, 1)[0]
        if keyword in NODE_KINDS:
            fields = line.split()
            if len(fields) < 2:
                raise DefsParseError(f"line {lineno}: {keyword} without a name")
            builder.open_node(keyword, fields[1], line, lineno)
        elif keyword in ("endsuite", "endfamily", "endalias"):
            builder.close(keyword[3:], lineno)
        elif keyword == "edit":
            name, value, server = _parse_edit(line, lineno)
            if builder.stack:
                builder.stack[-1].variables[name] = value
            elif defs is not None:
                (defs.server_variables if server else defs.user_variables)[name] = value
            else:
                raise DefsParseError(f"line {lineno}: variable {name!r} outside any node")
        elif keyword == "defs_state" and defs is not None:
            _read_defs_state(defs, line)
        elif lineno == 1 and line.startswith("#") and defs is not None:
            defs.version = line[1:].strip()
        elif builder.stack:
            # Triggers, limits, time dependencies, events, …; calendars, clocks and comments are not kept.
            read_attribute(builder.stack[-1].attrs, keyword, line)
    return builder.roots


def parse_defs(text: str) -> Defs:
    """Parse the whole definition (DefsCmd); raises DefsParseError if the text is cut short."""
    if "# enddef" not in text[-64:]:
        # ecFlow ends the text with this marker precisely so that readers can tell it was not truncated.
        raise DefsParseError("the definition text does not end with '# enddef': it was cut short; try again")
    defs = Defs()
    roots = _parse(text, defs)
    for root in roots:
        if root.kind != SUITE:
            raise DefsParseError(f"{root.kind} {root.name!r} is outside any suite")
    defs.suites = roots
    return defs


def parse_node(text: str, path: str) -> Node:
    """Parse one node fetched on its own (SNodeCmd) and place it at `path`; its ancestors are not known."""
    parent_path = path.rstrip("/").rsplit("/", 1)[0]
    roots = _parse(text, None, detached_parent_path=parent_path)
    if len(roots) != 1:
        raise DefsParseError(f"expected one node for {path}, the server sent {len(roots)}")
    return roots[0]
