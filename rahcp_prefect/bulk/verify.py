"""``hash_objects``: stream objects through SHA-256 and discard the bytes (an audit).

The same machinery as a download: the listing paged lazily (or an explicit key list),
presigned GETs in batches, ``workers`` coroutines; each object is hashed as it streams (in a
worker thread) and nothing is written. A single-part ETag is checked on the way (MD5), so a
body damaged in flight is fetched again instead of being reported as a mismatch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from rahcp_prefect import defaults
from rahcp_prefect.client.digests import Hasher, plain_md5_of_etag
from rahcp_prefect.client.errors import ChecksumMismatchError
from rahcp_prefect.client.represign import presigned_transfer

from .errors import RUN_STOPPING_ERRORS
from .pipeline import run_pipeline
from .presigner import Presigner
from .scanner import iter_listing
from .stats import error_text

Item = tuple[str, int, "str | None"]
"""``(key, size, etag)``."""


@dataclass(frozen=True, slots=True)
class ObjectDigest:
    """What an object's bytes hashed to."""

    size: int
    sha256: str
    etag: str | None


@dataclass
class HashedObjects:
    """The digests of the objects read, and those that could not be read (key -> error)."""

    digests: dict[str, ObjectDigest] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    elapsed: float = 0.0
    retries: int = 0


OnHashed = Callable[[str, "ObjectDigest | None", "str | None"], None]
"""``on_hashed(key, digest, error)``: one object's result (a digest, or why it was unreadable)."""


class InOrder:
    """Hands results over in the order their keys were admitted, though they finish in any
    order: only the keys in flight are held."""

    def __init__(self, emit: OnHashed) -> None:
        self._emit = emit
        self._admitted = 0
        self._next = 0
        self._seq: dict[str, int] = {}
        self._ready: dict[int, tuple[str, ObjectDigest | None, str | None]] = {}

    def admit(self, key: str) -> None:
        self._seq[key] = self._admitted
        self._admitted += 1

    def done(self, key: str, digest: ObjectDigest | None, error: str | None) -> None:
        self._ready[self._seq.pop(key)] = (key, digest, error)
        while self._next in self._ready:
            self._emit(*self._ready.pop(self._next))
            self._next += 1

    def finish(self) -> None:
        """Hand over what is left: a key admitted but never handled is one not read."""
        for key in sorted(self._seq, key=self._seq.__getitem__):
            self.done(key, None, "not read (the audit ended before it)")


async def hash_objects(
    client: Any,
    bucket: str,
    *,
    prefix: str = "",
    keys: Iterable[tuple[str, int]] | None = None,
    skip: Callable[[str], bool] | None = None,
    workers: int = defaults.WORKERS,
    queue_depth: int = defaults.QUEUE_DEPTH,
    presign_batch_size: int = defaults.PRESIGN_BATCH_SIZE,
    chunk_size: int = defaults.CHUNK_SIZE,
    on_hashed: OnHashed | None = None,
) -> HashedObjects:
    """SHA-256 of every object under ``prefix`` (or of ``keys``: ``(key, size)``), bytes
    discarded. ``skip(key)`` leaves an object out (e.g. the manifest itself).

    ``on_hashed(key, digest, error)``: each object's result handed over in the order of the
    listing (or of ``keys``) and not kept in ``digests``/``errors``, so an audit of any size
    holds only the objects in flight (``InOrder``)."""
    out = HashedObjects()
    data = client.data
    started, retries0 = monotonic(), data.retries
    order = InOrder(on_hashed) if on_hashed is not None else None

    def result(key: str, digest: ObjectDigest | None, error: str | None) -> None:
        if order is not None:
            order.done(key, digest, error)
        elif digest is not None:
            out.digests[key] = digest
        else:
            out.errors[key] = str(error)

    async def items() -> AsyncIterator[Item]:
        if keys is not None:
            for key, size in keys:
                if order is not None:
                    order.admit(key)
                yield key, size, None
            return
        async for key, size, etag in iter_listing(client.s3, bucket, prefix):
            if key.endswith("/") and size == 0:
                continue  # a folder marker
            if skip is None or not skip(key):
                if order is not None:
                    order.admit(key)
                yield key, size, etag

    async def handle(item: Item, url: str | None) -> None:
        key, _size, etag = item
        what = f"{bucket}/{key}"
        md5 = plain_md5_of_etag(etag)
        hasher = Hasher(md5=md5 is not None)
        try:
            for attempt in (1, 2):
                size = await presigned_transfer(
                    lambda: client.s3.presign_get(bucket, key),
                    lambda fresh: data.get_hashed(fresh, what=what, hasher=hasher, chunk_size=chunk_size),
                    url if attempt == 1 else None,
                )
                if md5 is None or hasher.md5 == md5:
                    break
                if attempt == 2:  # twice the same other bytes: what storage holds under this ETag
                    raise ChecksumMismatchError(f"{what}: the bytes read hash to MD5 {hasher.md5}, its ETag says {md5}")
                out.retries += 1
        except RUN_STOPPING_ERRORS:
            raise  # every object would fail so: the whole check stops
        except Exception as exc:
            result(key, None, error_text(exc))
            return
        assert hasher.sha256 is not None
        result(key, ObjectDigest(size, hasher.sha256, etag), None)
        out.bytes += size

    presigner: Presigner[Item] = Presigner(client.s3, bucket, method="get_object", batch_size=presign_batch_size)
    await run_pipeline(presigner.batches(items()), handle, workers=workers, queue_depth=queue_depth)
    if order is not None:
        order.finish()
    out.elapsed = monotonic() - started
    out.retries += data.retries - retries0
    return out
