"""``skip_existing`` without a HEAD per file: merge the sorted local keys with the listing.

S3 lists keys in UTF-8 byte order, which is Python's ``str`` order, and the scanner yields
keys in that same order. Walking both in step answers "is this key remote, and how big?"
with one list call per page of 1,000 keys, and holds one page at most.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


class RemoteSizes:
    """Sizes of remote keys, asked for in ascending key order.

    A key asked out of order is answered ``None`` (not known remote), so the caller uploads
    it again: wrong order can cost a transfer, never a skipped file.
    """

    def __init__(self, listing: AsyncIterator[tuple[str, int, str | None]]) -> None:
        self._listing = listing
        self._key: str | None = None
        self._size = 0
        self._etag: str | None = None
        self._exhausted = False

    async def _advance(self) -> None:
        try:
            self._key, self._size, self._etag = await self._listing.__anext__()
        except StopAsyncIteration:
            self._key = None
            self._exhausted = True

    async def lookup(self, key: str) -> tuple[int, str | None] | None:
        """``(size, etag)`` of ``key`` if it exists remotely, else ``None``."""
        if self._exhausted:
            return None
        if self._key is None:
            await self._advance()
        while self._key is not None and self._key < key:
            await self._advance()
        if self._key == key:
            return self._size, self._etag
        return None

    async def aclose(self) -> None:
        """Stop the listing early (no further pages are fetched)."""
        aclose = getattr(self._listing, "aclose", None)
        if aclose is not None:
            await aclose()


def common_prefix(first: str, last: str) -> str:
    """The longest common prefix of two strings (of a sorted batch: of all its keys)."""
    n = min(len(first), len(last))
    i = 0
    while i < n and first[i] == last[i]:
        i += 1
    return first[:i]
