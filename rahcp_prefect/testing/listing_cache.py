"""The reference backend's Redis cache of listings and HEADs (hcp-api.md section 8), optional.

Deployed with ``REDIS_URL``, the backend caches ``list_objects`` for 120 s and ``head_object``
for 300 s. Writes through the API invalidate (delete, bulk delete, copy onto its destination,
complete, create/delete bucket) and deletes turn list caching off for 15 s; **presigned PUTs go
straight to S3 and invalidate nothing**, so a listing or HEAD taken before an upload can miss
fresh objects (or show an old size) for minutes. 404s are not cached.

``ListingCache(ttl)`` does the same with ``ttl`` seconds for listings and ``2.5 * ttl`` for
HEADs (the reference's 120/300 ratio), so tests can use a few seconds; the pause after a delete
is 15 s or ``ttl`` when shorter. ``ListingCache(None)`` (the default) caches nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

HEAD_FACTOR = 2.5
DELETE_PAUSE = 15.0


class ListingCache:
    """Cached answers per bucket: listings by their query, HEADs by key (thread-safe)."""

    def __init__(self, ttl: float | None = None) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError(f"cache_ttl must be a positive number of seconds, got {ttl!r}")
        self.ttl = ttl
        self._lists: dict[str, dict[Any, tuple[float, Any]]] = {}
        self._heads: dict[tuple[str, str], tuple[float, Any]] = {}
        self._paused_until: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl is not None

    def listing(self, bucket: str, query: Any) -> Any | None:
        return self._fresh(self._lists.get(bucket, {}).get(query))

    def keep_listing(self, bucket: str, query: Any, answer: Any) -> None:
        if self.ttl is None or time.monotonic() < self._paused_until.get(bucket, 0.0):
            return
        with self._lock:
            self._lists.setdefault(bucket, {})[query] = (time.monotonic() + self.ttl, answer)

    def head(self, bucket: str, key: str) -> Any | None:
        return self._fresh(self._heads.get((bucket, key)))

    def keep_head(self, bucket: str, key: str, answer: Any) -> None:
        if self.ttl is not None:
            with self._lock:
                self._heads[(bucket, key)] = (time.monotonic() + self.ttl * HEAD_FACTOR, answer)

    def written(self, bucket: str, *keys: str) -> None:
        """A write through the API: the bucket's listings and these keys' HEADs are dropped."""
        if self.ttl is None:
            return
        with self._lock:
            self._lists.pop(bucket, None)
            for key in keys:
                self._heads.pop((bucket, key), None)

    def deleted(self, bucket: str, *keys: str, every_key: bool = False) -> None:
        """A delete through the API: as ``written``, and listings are not cached for a while."""
        if self.ttl is None:
            return
        self.written(bucket, *keys)
        with self._lock:
            if every_key:
                for stale in [k for k in self._heads if k[0] == bucket]:
                    del self._heads[stale]
            self._paused_until[bucket] = time.monotonic() + min(DELETE_PAUSE, self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._lists.clear()
            self._heads.clear()
            self._paused_until.clear()

    @staticmethod
    def _fresh(entry: tuple[float, Any] | None) -> Any | None:
        if entry is None or time.monotonic() >= entry[0]:
            return None
        return entry[1]
