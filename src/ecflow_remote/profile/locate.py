"""Where in a profile's text: the line of each key (tomllib reports none) and of a TOML syntax error."""

from __future__ import annotations

import re


class Locator:
    """Best-effort line numbers for keys: tomllib reports none, so the source text is scanned for them."""

    _HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*(\]\]?)\s*(?:#.*)?")
    _KEY = re.compile(r"\s*([\"']?)([A-Za-z0-9_\-]+)\1\s*=")

    def __init__(self, text: str) -> None:
        # (table, index, key) -> line; table "" is the top level, index counts [[table]] from 1, key None is
        # the table's own header.
        self._lines: dict[tuple[str, int | None, str | None], int] = {}
        counts: dict[str, int] = {}
        section: tuple[str, int | None] = ("", None)
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = self._HEADER.fullmatch(line)
            if header and len(header.group(1)) == len(header.group(3)):
                name = header.group(2).strip().strip("\"'")
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, 0) + 1
                    section = (name, counts[name])
                else:
                    section = (name, None)
                self._lines.setdefault((*section, None), number)
                continue
            key = self._KEY.match(line)
            if key:
                self._lines.setdefault((*section, key.group(2)), number)
                if section == ("", None):
                    # `gateway = {...}` at top level: the table's line.
                    self._lines.setdefault((key.group(2), None, None), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_multiline = quote
                    break

    def line(self, table: str, index: int | None = None, key: str | None = None) -> int | None:
        """The line of `key` in the table (or of the table if the key is not written there), else None."""
        if key is not None:
            found = self._lines.get((table, index, key))
            if found is not None:
                return found
        if table == "":
            # An unknown top-level key may be written as a [table] or [[table]] header.
            if key is None:
                return None
            return self._lines.get((key, None, None)) or self._lines.get((key, 1, None))
        return self._lines.get((table, index, None))


def toml_position(exc: Exception) -> tuple[int | None, str]:
    """The line of a TOMLDecodeError (None if it has none), and its message with the column in words."""
    # Python 3.11's TOMLDecodeError has no lineno attribute; its message ends with "(at line L, column C)".
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if match:
        return int(match.group(1)), f"{message[: match.start()]} (column {match.group(2)})"
    match = re.search(r"\s*\(at end of document\)\s*$", message)
    if match:
        return None, f"{message[: match.start()]} at the end of the file"
    return None, message
