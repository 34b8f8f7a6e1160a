"""Incremental sync: which files a rerun of a job sends again, decided per file at no cost.

The tracker records each file's size and modification time (ns) as it was sent. A rerun sends
a file again when it is **new** (no record of it done), **changed** (size or mtime differs
from the record) or **missing** (recorded and unchanged, but the bucket no longer holds it
with the recorded size: deleted from the final prefix, say); it leaves **unchanged** files
alone. ``existing`` is the engine's ``skip_existing`` case: no record, but the listing holds
the key with the file's size (adopted, recorded as done, not sent).

Everything here works on streams in key order (the scanner's walk, the tracker's records and
the bucket's listings are all in UTF-8 byte order), so a rerun over millions of files holds
one page of each, never the whole job. A key asked out of order is answered "not known",
which can cost a transfer, never a skipped file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Protocol

from rahcp_prefect.tracker.protocol import TrackerProtocol, TransferStatus

from .existing import RemoteSizes
from .scanner import iter_listing

AdoptFn = Callable[[str, int, int], None]
"""``adopt(rel, size, mtime_ns)``: record a file found already staged as done."""

ArchivedFn = Callable[[str, int, int], Awaitable[bool]]
"""``adopt_archived(rel, size, mtime_ns)``: record a file the final prefix's fixity records list
with this mtime as done (its recorded SHA-256); True when adopted."""

Record = tuple[int, "int | None"]
"""``(size, mtime_ns)`` of a file as the tracker recorded it when it was sent."""


class Change(str, Enum):
    """What a rerun does with one file, and why."""

    new = "new"  # no record of it done: send
    changed = "changed"  # size or mtime differs from the record: send
    missing = "missing"  # unchanged, but not in the bucket with its recorded size: send
    unchanged = "unchanged"  # as recorded and where it should be: no request
    existing = "existing"  # no record, the listing holds it with its size: adopt (skip_existing)


SENDS = frozenset({Change.new, Change.changed, Change.missing})
"""The outcomes that transfer the file."""


def decide(
    size: int,
    mtime_ns: int | None,
    record: Record | None,
    stored: int | None = None,
    *,
    listed: bool = False,
    adopt: bool = False,
) -> Change:
    """The sync decision for one file (pure; a few comparisons).

    ``size``/``mtime_ns``: the file now. ``record``: the tracker's ``(size, mtime_ns)`` of it
    done, or None. ``stored``: the size the bucket holds for it (None: absent), meaningful
    only when ``listed`` (a listing was read). ``adopt``: without a record, a stored object of
    the same size counts as ``existing`` instead of ``new``. A record without mtime (written
    before the tracker recorded it) never matches: such a file is sent once more, then known.
    """
    if record is None:
        if adopt and listed and stored == size:
            return Change.existing
        return Change.new
    if record[0] != size or record[1] != mtime_ns or mtime_ns is None:
        return Change.changed
    if listed and stored != size:
        return Change.missing
    return Change.unchanged


def decide_download(
    local: tuple[int, int] | None, record: Record | None, listed_size: int, *, adopt: bool = False
) -> Change:
    """The sync decision for one object of a download (pure).

    ``local``: ``(size, mtime_ns)`` of the file on disk, None when absent. ``record``: what
    the tracker recorded when the job wrote it (size, and the mtime the file had once written).
    ``listed_size``: the object's size in the listing. A local file edited, truncated or
    touched since the job wrote it is ``changed`` (fetched again), so is one whose object
    changed size; a deleted one is ``missing``. ``adopt``: a file the tracker does not know,
    already on disk with the listed size, is ``existing`` (the engine's resume).
    """
    if record is None:
        if adopt and local is not None and local[0] == listed_size:
            return Change.existing
        return Change.new
    if local is None:
        return Change.missing
    if local[0] != record[0] or local[1] != record[1] or record[0] != listed_size:
        return Change.changed
    return Change.unchanged


@dataclass
class SyncCounts:
    """How many files of a run fell in each case (the flows' result and summary)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0

    def add(self, change: Change) -> None:
        """Count one decision (``existing`` is left alone: an adopted file, not unchanged)."""
        if change is not Change.existing:
            setattr(self, change.value, getattr(self, change.value) + 1)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Archive(Protocol):
    """What a final prefix's fixity records say of a file (the job layer reads them)."""

    async def line(self, rel: str) -> tuple[str, int | None] | None:
        """``(SHA-256, mtime_ns or None)`` of ``rel`` (relative to the prefix), None: not listed."""
        ...


class SortedRecords:
    """The tracker's records, asked for in ascending key order, one page in memory.

    ``rows`` yields ``(key, size, mtime_ns)`` in key order (the tracker's ``iter_done``), lazily.
    """

    def __init__(self, rows: Iterable[tuple[str, int, int | None]]) -> None:
        self._rows: Iterator[tuple[str, int, int | None]] = iter(rows)
        self._key: str | None = None
        self._record: Record = (0, None)
        self._exhausted = False

    def _advance(self) -> None:
        row = next(self._rows, None)
        if row is None:
            self._key = None
            self._exhausted = True
        else:
            self._key, size, mtime = row
            self._record = (size, mtime)

    def lookup(self, key: str) -> Record | None:
        """``(size, mtime_ns)`` recorded for ``key``, or None."""
        if self._exhausted:
            return None
        if self._key is None:
            self._advance()
        while self._key is not None and self._key < key:
            self._advance()
        return self._record if self._key == key else None


class StoredSizes:
    """Where a job's files live in the bucket: its staging prefix, then its final prefix.

    Two listings read in step with the files (one page of each at a time). A recorded file
    is stored when staging (not yet committed) or the final prefix (committed) holds it with
    the recorded size.
    """

    def __init__(self, staging: RemoteSizes | None, final: RemoteSizes, staging_prefix: str, final_prefix: str) -> None:
        self._staging = staging
        self._final = final
        self._staging_prefix = staging_prefix
        self._final_prefix = final_prefix

    async def staged_size(self, rel: str) -> int | None:
        """The size of ``rel`` in staging, None when staging does not hold it."""
        if self._staging is None:
            return None
        staged = await self._staging.lookup(self._staging_prefix + rel)
        return staged[0] if staged is not None else None

    async def size_of(self, rel: str, recorded: int) -> int | None:
        """The stored size of ``rel``: the recorded one if either place holds it so."""
        if self._staging is not None:
            staged = await self._staging.lookup(self._staging_prefix + rel)
            if staged is not None and staged[0] == recorded:
                return recorded
        return await self.final_size(rel)

    async def final_size(self, rel: str) -> int | None:
        """The size of ``rel`` in the final prefix, None when it does not hold it."""
        final = await self._final.lookup(self._final_prefix + rel)
        return final[0] if final is not None else None

    async def aclose(self) -> None:
        if self._staging is not None:
            await self._staging.aclose()
        await self._final.aclose()


async def plan_sync(
    files: Iterable[tuple[str, int, int]],
    records: SortedRecords | None,
    stored: StoredSizes | None,
    counts: SyncCounts,
    record_prefix: str = "",
    send_all: bool = False,
    adopt: AdoptFn | None = None,
    archived: ArchivedFn | None = None,
) -> AsyncIterator[tuple[str, int, int, Change]]:
    """``(rel, size, mtime_ns, change)`` of the ``files`` (in key order) a rerun must send;
    every decision is counted in ``counts``.

    ``records``: the job's done records, keyed ``record_prefix + rel`` (None: none, every file
    is new). ``stored``: where the bucket holds the job's files (None: no listing, a recorded
    unchanged file is trusted to be there). ``send_all``: count as usual, but send every file.
    ``adopt``: called for a file without a record that staging already holds with its size
    (staged by a run killed before its marks reached the tracker); it is counted unchanged,
    not sent. Without ``adopt`` such a file is new. ``archived``: asked about a file still new
    that the final prefix holds with its size (the job's tracker lost, or a new job over an
    archived prefix): adopted when the prefix's fixity records list it with its mtime.
    """
    try:
        for rel, size, mtime_ns in files:
            record = records.lookup(record_prefix + rel) if records is not None else None
            where: int | None = None
            listed = False
            if stored is not None:
                if record is None and adopt is not None:
                    where, listed = await stored.staged_size(rel), True
                elif record is not None and record == (size, mtime_ns):
                    where, listed = await stored.size_of(rel, record[0]), True
            change = decide(size, mtime_ns, record, where, listed=listed, adopt=adopt is not None)
            if change is Change.existing:
                assert adopt is not None
                adopt(rel, size, mtime_ns)
                change = Change.unchanged
            elif change is Change.new and archived is not None and stored is not None:
                if await stored.final_size(rel) == size and await archived(rel, size, mtime_ns):
                    change = Change.unchanged
            counts.add(change)
            if send_all or change in SENDS:
                yield rel, size, mtime_ns, change
    finally:
        if stored is not None:
            await stored.aclose()


async def files_to_send(
    s3: Any,
    tracker: TrackerProtocol,
    files: Iterable[tuple[str, int, int]],
    *,
    bucket: str,
    staging_prefix: str,
    final_prefix: str,
    counts: SyncCounts,
    send_all: bool = False,
    staging_bucket: str | None = None,
    archive: Archive | None = None,
) -> AsyncIterator[tuple[str, int, int, Change]]:
    """The files of a staged upload job that a run must send (see ``plan_sync``); staging is
    listed in ``staging_bucket`` when it lives in another namespace.

    Reads the job's records (keyed by staging key) a page at a time and the staging and
    final listings in step (the final one only for files recorded unchanged): a rerun where
    nothing changed costs one listing of the final prefix (plus one request for the empty
    staging), no request per file. A file a killed run staged before its mark reached the
    tracker is adopted by size (recorded done, counted unchanged). ``send_all``
    (``skip_existing=False``): no listing, every file is sent. ``archive``: the final prefix's
    fixity records (read only when a file without a record is found there with its size): such
    a file listed with its mtime is adopted with its recorded SHA-256, not sent.
    """
    records = SortedRecords(tracker.iter_done(staging_prefix))
    stored = None
    if not send_all:
        stored = StoredSizes(
            listing(s3, staging_bucket or bucket, staging_prefix), listing(s3, bucket, final_prefix),
            staging_prefix, final_prefix,
        )

    def adopt(rel: str, size: int, mtime_ns: int) -> None:
        tracker.mark(staging_prefix + rel, size, TransferStatus.done, mtime_ns=mtime_ns)

    async def adopt_archived(rel: str, size: int, mtime_ns: int) -> bool:
        assert archive is not None
        line = await archive.line(rel)
        if line is None or line[1] != mtime_ns:
            return False
        tracker.mark(staging_prefix + rel, size, TransferStatus.done, mtime_ns=mtime_ns, sha256=line[0])
        return True

    try:
        async for item in plan_sync(
            files, records, stored, counts, staging_prefix, send_all=send_all, adopt=adopt,
            archived=adopt_archived if archive is not None else None,
        ):
            yield item
    finally:
        tracker.flush()


def listing(s3: Any, bucket: str, prefix: str) -> RemoteSizes:
    """The sizes under ``prefix``, for lookups in key order (one list call per page)."""
    return RemoteSizes(iter_listing(s3, bucket, prefix))
