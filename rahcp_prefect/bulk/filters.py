"""Include/exclude glob patterns, compiled once into two regexes.

A pattern matches a file when it matches its name or its relative path (``/`` separators), so
``*.tif`` selects every TIFF at any depth and ``raw/*`` a folder. Matching is case-sensitive
on every OS (``fnmatchcase`` rules), so a run selects the same keys wherever it runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import translate


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))


class GlobFilter:
    """``accepts(relpath)``: included (or no include list) and not excluded."""

    __slots__ = ("_exclude", "_include", "active")

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self._include = _compile(include)
        self._exclude = _compile(exclude)
        self.active = self._include is not None or self._exclude is not None

    def accepts(self, relpath: str) -> bool:
        """Whether the file at ``relpath`` (``/`` separators) takes part in the transfer."""
        name = relpath.rpartition("/")[2]
        inc = self._include
        if inc is not None and inc.match(name) is None and inc.match(relpath) is None:
            return False
        exc = self._exclude
        if exc is not None and (exc.match(name) is not None or exc.match(relpath) is not None):
            return False
        return True
