"""Node attributes of the NET definition text (triggers, limits, time dependencies, events, meters, labels)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

# The attribute keywords whose lines are kept verbatim as time dependencies (ecFlow's TimeAttr, TodayAttr, …).
TIME_KEYWORDS = ("time", "today", "date", "day", "cron")


@dataclass
class Limit:
    """`limit NAME MAX [# VALUE PATH…]`: how many tokens are in use and by whom."""

    name: str
    limit: int
    value: int = 0
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class InLimit:
    """`inlimit [-n] [-s] [PATH:]NAME [TOKENS]`: this node consumes tokens of a limit defined on PATH (or above)."""

    name: str
    path: str = ""
    tokens: int = 1
    node_only: bool = False
    submission: bool = False

    @property
    def text(self) -> str:
        where = f"{self.path}:{self.name}" if self.path else self.name
        return where + (f" {self.tokens}" if self.tokens != 1 else "")


@dataclass(frozen=True)
class Meter:
    name: str
    minimum: int
    maximum: int
    threshold: int
    value: int


@dataclass
class Attributes:
    """What a node carries besides its variables and state; the text forms are ecFlow's own."""

    trigger: str | None = None
    trigger_free: bool = False
    complete: str | None = None
    complete_free: bool = False
    limits: dict[str, Limit] = field(default_factory=dict)
    inlimits: list[InLimit] = field(default_factory=list)
    # `time 10:00 # isValid:false` → ("time 10:00", "isValid:false"): the dependency and the server's note on it.
    times: list[tuple[str, str]] = field(default_factory=list)
    events: dict[str, bool] = field(default_factory=dict)
    # `event 1 name`: triggers may say `task:1` as well as `task:name`.
    event_numbers: dict[str, str] = field(default_factory=dict)
    meters: dict[str, Meter] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    repeat: str | None = None
    defstatus: str | None = None
    late: str | None = None

    def clear(self) -> None:
        """Forget every attribute, as ecFlow's Node::clear() before a sync re-sends them all."""
        fresh = Attributes()
        self.__dict__.update(fresh.__dict__)


def _split_comment(line: str) -> tuple[str, str]:
    body, _, comment = line.partition(" # ")
    return body.strip(), comment.strip()


def _join(old: str | None, kind: str, part: str) -> str:
    # ecFlow composes `trigger -a X` / `trigger -o X` onto the first part as "first AND X" / "first OR X".
    if old is None:
        return part
    return f"{old} {'and' if kind == '-a' else 'or'} {part}"


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def read_attribute(attrs: Attributes, keyword: str, line: str) -> bool:
    """Read one attribute line into `attrs`; False when the keyword is not one of these attributes."""
    body, comment = _split_comment(line)
    rest = body[len(keyword) :].strip()
    if keyword in ("trigger", "complete"):
        kind = ""
        if rest[:3] in ("-a ", "-o "):
            kind, rest = rest[:2], rest[3:].strip()
        free = comment == "free"
        if keyword == "trigger":
            attrs.trigger = _join(attrs.trigger, kind, rest)
            attrs.trigger_free = attrs.trigger_free or free
        else:
            attrs.complete = _join(attrs.complete, kind, rest)
            attrs.complete_free = attrs.complete_free or free
        return True
    if keyword == "limit":
        words = rest.split()
        if len(words) < 2:
            return True
        extra = comment.split()
        value = int(extra[0]) if extra and extra[0].lstrip("-").isdigit() else 0
        attrs.limits[words[0]] = Limit(words[0], _int(words[1]), value, tuple(extra[1:]))
        return True
    if keyword == "inlimit":
        attrs.inlimits.append(_read_inlimit(rest))
        return True
    if keyword in TIME_KEYWORDS:
        attrs.times.append((body, comment))
        return True
    if keyword == "event":
        _read_event(attrs, rest, comment)
        return True
    if keyword == "meter":
        words = rest.split()
        if len(words) >= 3:
            minimum, maximum = _int(words[1]), _int(words[2])
            threshold = _int(words[3]) if len(words) > 3 else maximum
            value = _int(comment.split()[0]) if comment else minimum
            attrs.meters[words[0]] = Meter(words[0], minimum, maximum, threshold, value)
        return True
    if keyword == "label":
        name, _, value_text = rest.partition(" ")
        # The server notes the label's current text after '#' once a job changed it.
        attrs.labels[name] = _unquote(comment) if comment else _unquote(value_text)
        return True
    if keyword == "repeat":
        attrs.repeat = body[len("repeat") :].strip() + (f" # {comment}" if comment else "")
        return True
    if keyword == "defstatus":
        attrs.defstatus = rest
        return True
    if keyword == "late":
        attrs.late = rest
        return True
    return False


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    # ecFlow writes a new line inside a label as the two characters \n.
    return text.replace("\\n", "\n")


def _read_inlimit(rest: str) -> InLimit:
    words = rest.split()
    node_only = "-n" in words
    submission = "-s" in words
    words = [w for w in words if w not in ("-n", "-s")]
    if not words:
        return InLimit("")
    ref = words[0]
    tokens = _int(words[1]) if len(words) > 1 else 1
    path, colon, name = ref.rpartition(":")
    if not colon:
        path, name = "", ref
    return InLimit(name, path, tokens, node_only, submission)


def _read_event(attrs: Attributes, rest: str, comment: str) -> None:
    words = _words(rest)
    initial = False
    if words and words[-1] in ("set", "clear"):
        initial = words.pop() == "set"
    # `event 1 name`, `event name` or `event 1`: ecFlow names a numbered event without a name by its number.
    name = words[-1] if words else ""
    if len(words) >= 2:
        attrs.event_numbers[words[0]] = name
    value = initial
    if comment in ("set", "clear"):
        value = comment == "set"
    attrs.events[name] = value
