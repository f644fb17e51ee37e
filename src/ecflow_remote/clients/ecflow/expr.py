"""A small evaluator for ecFlow trigger and complete expressions, with the reasons a false one is false."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecflow_remote.errors import ExpressionError, UnknownNode

from .defs import STATES

if TYPE_CHECKING:
    from .defs import Node


_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|&&|\|\||[<>()!~])|(?P<int>-?\d+(?![\w./:]))|(?P<ref>[\w./]+(?::[\w.]+)?))"
)
_WORD_OPS = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "gt": ">",
    "le": "<=",
    "ge": ">=",
    "and": "and",
    "or": "or",
    "not": "not",
    "&&": "and",
    "||": "or",
    "!": "not",
    "~": "not",
}
_FLAGS = {"set": 1, "clear": 0}
_COMPARISONS = ("==", "!=", "<", ">", "<=", ">=")
# ecFlow's DState names a node may be compared with, beyond the node states.
_STATE_WORDS = (*STATES, "suspended")
# Parentheses and `not`s nested deeper than this are refused (the parser and evaluator recurse per level; real
# triggers nest a handful). Long `a and b and …` chains are not nesting: they are walked in a loop.
MAX_EXPRESSION_DEPTH = 100


@dataclass(frozen=True)
class Ref:
    """A node path, optionally with `:attribute` (event, meter, variable, repeat, limit)."""

    path: str
    attr: str = ""


@dataclass(frozen=True)
class Const:
    value: int | str


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


Expr = Ref | Const | Not | BinOp


def _chain(expr: BinOp) -> list[Expr]:
    """The operands of a left-deep `a and b and c` (or `or`) chain, in order, without recursing per operand."""
    parts: list[Expr] = []
    node: Expr = expr
    while isinstance(node, BinOp) and node.op == expr.op:
        parts.append(node.right)
        node = node.left
    parts.append(node)
    parts.reverse()
    return parts


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"cannot read the expression {text!r} at {text[pos:]!r}")
        token = m.group("op") or m.group("int") or m.group("ref")
        out.append(_WORD_OPS.get(token.lower(), token) if token.lower() in _WORD_OPS else token)
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionError(
                f"the expression {self.text[:80]!r}… nests more than {MAX_EXPRESSION_DEPTH} parentheses or 'not's"
            )

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"the expression {self.text!r} ends too early")
        self.pos += 1
        return token

    def parse(self) -> Expr:
        expr = self.or_expr()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r} in the expression {self.text!r}")
        return expr

    def or_expr(self) -> Expr:
        left = self.and_expr()
        while self.peek() == "or":
            self.take()
            left = BinOp("or", left, self.and_expr())
        return left

    def and_expr(self) -> Expr:
        left = self.not_expr()
        while self.peek() == "and":
            self.take()
            left = BinOp("and", left, self.not_expr())
        return left

    def not_expr(self) -> Expr:
        if self.peek() == "not":
            self.take()
            self.deeper()
            inner = self.not_expr()
            self.depth -= 1
            return Not(inner)
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.operand()
        if self.peek() in _COMPARISONS:
            op = self.take()
            return BinOp(op, left, self.operand())
        return left

    def operand(self) -> Expr:
        token = self.take()
        if token == "(":
            self.deeper()
            inner = self.or_expr()
            if self.take() != ")":
                raise ExpressionError(f"missing ')' in the expression {self.text!r}")
            self.depth -= 1
            return inner
        if re.fullmatch(r"-?\d+", token):
            return Const(int(token))
        if token.lower() in _STATE_WORDS or token.lower() in ("set", "clear"):
            return Const(token.lower())
        if token in _COMPARISONS or token in ("and", "or", "not", ")"):
            raise ExpressionError(f"unexpected {token!r} in the expression {self.text!r}")
        path, _, attr = token.partition(":")
        return Ref(path, attr)


def parse(text: str) -> Expr:
    """The expression as a tree; ExpressionError when it cannot be read."""
    return _Parser(text).parse()


def resolve(node: Node, path: str) -> Node:
    """The node a trigger path names, as ecFlow resolves it: absolute, or from the node's parent (`a`, `./a`,
    `../f/a`)."""
    if path.startswith("/"):
        root = node
        while root.parent is not None:
            root = root.parent
        defs = root.defs
        if defs is None:
            raise UnknownNode(f"cannot resolve {path}: the node is not part of a whole definition")
        return defs.find(path)
    base: Node | None = node.parent if node.parent is not None else node
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if base is None:
            break
        if part == "..":
            base = base.parent
            continue
        base = base.find(part)
    if base is None:
        raise UnknownNode(f"{path} goes above the suite of {node.path}")
    return base


@dataclass
class _Value:
    value: int | str
    # How a person reads this operand: "/s/f/a is queued", "/s/f/a:ev is clear".
    note: str = ""


class Evaluator:
    """Evaluates one expression for one node and notes, for each comparison that fails, what it found."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.reasons: list[str] = []

    def truth(self, expr: Expr) -> bool:
        if isinstance(expr, BinOp) and expr.op in ("and", "or"):
            for part in _chain(expr):
                ok = self.truth(part)
                if ok != (expr.op == "and"):
                    return ok  # `and` stops at the first false, `or` at the first true
            return expr.op == "and"
        if isinstance(expr, Not):
            saved = list(self.reasons)
            result = not self.truth(expr.operand)
            # Reasons found under a `not` explain why the inner part was false, which made the whole true.
            self.reasons = saved
            if not result:
                self.reasons.append(f"not ({_text(expr.operand)}) is false")
            return result
        if isinstance(expr, BinOp):
            return self._compare(expr)
        value = self.value(expr)
        if isinstance(expr, Ref) and not expr.attr:
            # A node on its own means "it is complete".
            ok = value.value == "complete"
        else:
            ok = value.value not in (0, "", "clear")
        if not ok:
            self.reasons.append(value.note or f"{_text(expr)} is false")
        return ok

    def _compare(self, expr: BinOp) -> bool:
        left, right = self.value(expr.left), self.value(expr.right)
        # `task:event == set`: events compare as 1 and 0.
        a, b = (_FLAGS.get(v, v) if isinstance(v, str) else v for v in (left.value, right.value))
        if expr.op in ("==", "!="):
            equal = str(a) == str(b)
            ok = equal if expr.op == "==" else not equal
        else:
            x, y = _number(a), _number(b)
            ok = {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[expr.op]
        if not ok:
            found = "; ".join(v.note for v in (left, right) if v.note)
            self.reasons.append(f"{_text(expr)}" + (f": {found}" if found else ""))
        return ok

    def value(self, expr: Expr) -> _Value:
        if isinstance(expr, Const):
            return _Value(expr.value)
        if isinstance(expr, (Not, BinOp)):
            return _Value(int(self.truth(expr)))
        try:
            target = resolve(self.node, expr.path)
        except UnknownNode:
            return _Value("", f"{expr.path} does not exist")
        if not expr.attr:
            state = "suspended" if target.suspended else target.state
            return _Value(target.state, f"{target.path} is {state}")
        return self._attribute(target, expr.attr)

    def _attribute(self, target: Node, name: str) -> _Value:
        attrs = target.attrs
        ref = f"{target.path}:{name}"
        event = attrs.event_numbers.get(name, name)
        if event in attrs.events:
            is_set = attrs.events[event]
            return _Value(int(is_set), f"{ref} is {'set' if is_set else 'clear'}")
        if name in attrs.meters:
            meter = attrs.meters[name].value
            return _Value(meter, f"{ref} is {meter}")
        if name in attrs.limits:
            used = attrs.limits[name].value
            return _Value(used, f"{ref} is {used}")
        if attrs.repeat and attrs.repeat.split()[1:2] == [name]:
            value = _repeat_value(attrs.repeat)
            return _Value(value, f"{ref} is {value}")
        variable = target.inherited_variable(name)
        if variable is not None:
            return _Value(_number_or_text(variable), f"{ref} is {variable!r}")
        return _Value(0, f"{ref} does not exist")


def _repeat_value(repeat: str) -> int | str:
    # `repeat integer I 1 5 # 2`: the server notes the current value after '#', else it is the start.
    body, _, current = repeat.partition(" # ")
    words = body.split()
    text = current.split()[0] if current.strip() else (words[2] if len(words) > 2 else "0")
    return _number_or_text(text)


def _number_or_text(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _number(value: int | str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        # ecFlow compares node states by their order in NState when asked < or >.
        return STATES.index(value) if value in STATES else 0


def _text(expr: Expr) -> str:
    if isinstance(expr, Const):
        return str(expr.value)
    if isinstance(expr, Ref):
        return f"{expr.path}:{expr.attr}" if expr.attr else expr.path
    if isinstance(expr, Not):
        return f"not {_text(expr.operand)}"
    if expr.op in ("and", "or"):
        return f" {expr.op} ".join(_text(part) for part in _chain(expr))
    return f"{_text(expr.left)} {expr.op} {_text(expr.right)}"


def evaluate(text: str, node: Node) -> bool:
    """Whether `text` (a trigger or complete expression) holds for `node` in the tree it belongs to."""
    return Evaluator(node).truth(parse(text))


def explain(text: str, node: Node) -> tuple[bool, list[str]]:
    """(holds, the failing comparisons with what was found) for `text` evaluated at `node`."""
    evaluator = Evaluator(node)
    result = evaluator.truth(parse(text))
    return result, ([] if result else evaluator.reasons)
