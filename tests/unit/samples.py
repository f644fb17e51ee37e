"""Where the unit tests' recorded samples live (bytes and definitions from a real ecFlow 5.9.2)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"
