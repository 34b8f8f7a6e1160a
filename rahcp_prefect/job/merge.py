"""Merging sorted streams by key: how a phase compares the job's records with a listing in flat
memory.

The tracker's key order is S3's (UTF-8 bytes, ``tracker.iter_done``) and a listing arrives in
that order a page at a time, so a phase that compares them walks both in step (``outer_join``)
with one page of each in memory, never a dict of the whole job. ``Problems`` keeps what a check
found the same way: the first few named, the rest counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")

#: Problems a check names in its error; the rest are counted.
SHOWN = 5


async def outer_join(
    left: AsyncIterator[tuple[str, A]], right: Iterable[tuple[str, B]]
) -> AsyncIterator[tuple[str, A | None, B | None]]:
    """``(key, left value or None, right value or None)`` for every key of either stream, in
    key order. Both streams must be in ascending key order, each key once."""
    rights = iter(right)
    pending = next(rights, None)
    async for key, value in left:
        while pending is not None and pending[0] < key:
            yield pending[0], None, pending[1]
            pending = next(rights, None)
        if pending is not None and pending[0] == key:
            yield key, value, pending[1]
            pending = next(rights, None)
        else:
            yield key, value, None
    while pending is not None:
        yield pending[0], None, pending[1]
        pending = next(rights, None)


class Problems:
    """What a check found wrong: a count, and the first ``SHOWN`` described."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.shown) < SHOWN:
            self.shown.append(text)

    def __bool__(self) -> bool:
        return self.count > 0

    def text(self) -> str:
        """The first problems and how many more there are (as ``staging.problems_text``)."""
        shown = "; ".join(self.shown)
        more = self.count - len(self.shown)
        return shown + (f" (and {more} more)" if more > 0 else "")
