"""How a profile's TOML values are named in error messages ("an integer", "true", a shortened repr), and what the
loader offers the checkers of its optional tables ([ui], [web])."""

from __future__ import annotations

from typing import Final, NoReturn, Protocol

# bool before int: a bool is an int in Python.
_TYPE_NAMES: Final = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number with a fraction"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
)


def type_name(value: object) -> str:
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), "a date/time")


def short(value: object) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class TableChecker(Protocol):
    """What the profile loader offers a table checker (load._Checker): uitable.py, webtable.py."""

    def fail(self, message: str, table: str, index: int | None = None, key: str | None = None) -> NoReturn: ...

    def check_keys(self, data: dict[str, object], allowed: tuple[str, ...], table: str, index: int | None) -> None: ...

    def get_table(self, data: dict[str, object], key: str) -> dict[str, object] | None: ...

    def get_port(
        self, data: dict[str, object], key: str, table: str, index: int | None, default: int | None
    ) -> int: ...
