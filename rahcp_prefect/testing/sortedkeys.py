"""A sorted set of object keys in S3's order, cheap to change at a million keys.

S3 lists keys in UTF-8 byte order; for the strings an S3 key can hold (no lone surrogates) that
is Python's code-point order, so plain ``str`` comparison is S3's. The keys live in sorted
chunks of at most ``CHUNK`` keys with each chunk's largest key kept apart, so adding or removing
one key costs a bisect and a move inside one chunk (not of the whole list), and listing from a
key is a bisect and a walk: what the metadata store (``metastore``) needs to list a page of a
million-key bucket in microseconds while uploads keep adding keys.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator

CHUNK = 1000
"""Keys per chunk before it is split in two."""


class SortedKeys:
    """Distinct strings kept sorted; ``add``/``discard`` in O(log n + CHUNK)."""

    def __init__(self) -> None:
        self._chunks: list[list[str]] = []
        self._maxes: list[str] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: str) -> None:
        """Add ``key`` (the caller knows it is not there yet)."""
        if not self._chunks:
            self._chunks.append([key])
            self._maxes.append(key)
        else:
            i = bisect_left(self._maxes, key)
            if i == len(self._maxes):
                i -= 1
                self._chunks[i].append(key)
                self._maxes[i] = key
            else:
                insort(self._chunks[i], key)
            chunk = self._chunks[i]
            if len(chunk) > 2 * CHUNK:
                half = len(chunk) // 2
                self._chunks[i : i + 1] = [chunk[:half], chunk[half:]]
                self._maxes[i : i + 1] = [chunk[half - 1], chunk[-1]]
        self._len += 1

    def discard(self, key: str) -> None:
        """Remove ``key`` if present."""
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            return
        del chunk[j]
        self._len -= 1
        if not chunk:
            del self._chunks[i]
            del self._maxes[i]
        elif j == len(chunk):
            self._maxes[i] = chunk[-1]

    def from_key(self, start: str, inclusive: bool = True) -> Iterator[str]:
        """The keys from ``start`` on (after it when not ``inclusive``), in order.

        Do not change the set while walking it; take what a page needs, then change.
        """
        find = bisect_left if inclusive else bisect_right
        i = find(self._maxes, start)
        if i == len(self._maxes):
            return
        j = find(self._chunks[i], start)
        yield from self._chunks[i][j:]
        for chunk in self._chunks[i + 1 :]:
            yield from chunk
