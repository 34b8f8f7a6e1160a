"""Files deleted at the source since the job last sent them: found, reported, mirrored on request.

An archive keeps what it was given: a rerun of an upload job never deletes an object because
its source file is gone. It reports it (``deleted_at_source``: the job's done records that the
scan no longer finds), and only ``mirror_deletions`` removes such objects from the final prefix,
behind rclone's safety nets (``mirror_hold_reason``): none when the source is empty or could not
be read in full, none after any error, none beyond ``max_delete`` (a count or a percentage of
the job's files), and a dry run only lists them. An object the namespace retains (403 on
delete: retention or hold) is reported as retained, never a failure; its record and manifest
line stay.

The scan and the records are both in key order (UTF-8 byte order), so finding the deletions is a
merge of two streams: one record in memory, plus the names found deleted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from rahcp_prefect.bulk.filters import GlobFilter
from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.manifest import is_tag_path
from rahcp_prefect.tracker.protocol import TrackerProtocol

logger = logging.getLogger(__name__)

RETAINED_STATUS = 403
"""HCP answers a delete of an object under retention or on hold with 403."""

MaxDelete = int | str | None
"""``max_delete``: a count (``10``), a percentage of the job's files (``"5%"``) or None (no limit)."""


def parse_max_delete(value: MaxDelete) -> MaxDelete:
    """``value`` checked: a count >= 0, a percentage ``"0%"``..``"100%"``, or None."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, str):
        text = value.strip()
        number = text[:-1].strip() if text.endswith("%") else text
        try:
            parsed = float(number)
        except ValueError:
            parsed = -1.0
        if text.endswith("%") and 0 <= parsed <= 100:
            return f"{parsed:g}%"
        if not text.endswith("%") and number.isdigit():
            return int(number)
    raise ValueError(f"max_delete must be a count >= 0 or a percentage like '5%', got {value!r}")


def delete_limit(max_delete: MaxDelete, recorded: int) -> int | None:
    """How many deletions ``max_delete`` allows for a job of ``recorded`` files (None: any)."""
    if max_delete is None:
        return None
    if isinstance(max_delete, str):
        return math.floor(recorded * float(max_delete.rstrip("%")) / 100)
    return int(max_delete)


class DeletionWatch:
    """Passes the scanned files through and notes the job's records the scan never yields.

    ``records``: the job's done records ``(key, size, mtime_ns)`` under ``record_prefix``, in
    key order (``tracker.iter_done``). ``counts(rel)``: whether a record's path is one this
    run's scan could have found (the include/exclude filters; a path under an entry the scan
    could not read is never called deleted). The deletions are known once the scan ran to its
    end (``complete``).
    """

    def __init__(
        self,
        records: Iterable[tuple[str, int, int | None]],
        record_prefix: str,
        counts: Callable[[str], bool] | None = None,
        unreadable: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._records = iter(records)
        self.record_prefix = record_prefix
        self._counts = counts
        self._unreadable = unreadable  # the scan's errors list: (rel, message), read at the end
        self._pending: list[str] = []
        self.recorded = 0
        self.seen = 0
        self.complete = False

    def _next(self) -> str | None:
        for key, _size, _mtime in self._records:
            rel = key[len(self.record_prefix):]
            if is_tag_path(rel):
                continue
            self.recorded += 1
            return rel
        return None

    def watch(self, files: Iterable[tuple[str, int, int]]) -> Iterator[tuple[str, int, int]]:
        """``files`` unchanged; records passed over are noted as candidates."""
        current = self._next()
        for item in files:
            rel = item[0]
            while current is not None and current < rel:
                self._pending.append(current)
                current = self._next()
            if current == rel:
                current = self._next()
            self.seen += 1
            yield item
        while current is not None:
            self._pending.append(current)
            current = self._next()
        self.complete = True

    @property
    def deleted(self) -> list[str]:
        """Paths (relative to the prefix) the job holds that the source no longer has."""
        if not self.complete:
            return []
        unreadable = [rel for rel, _message in self._unreadable]
        return [
            rel for rel in self._pending
            if (self._counts is None or self._counts(rel))
            and not any(rel == bad or rel.startswith(bad.rstrip("/") + "/") for bad in unreadable)
        ]


def mirror_hold_reason(watch: DeletionWatch, errors: int, max_delete: MaxDelete) -> str | None:
    """Why ``mirror_deletions`` must delete nothing this run (None: it may)."""
    deleted = watch.deleted
    if not watch.complete:
        return "the source was not read to its end"
    if watch.seen == 0:
        return "the source is empty (an unmounted share looks like that)"
    if errors:
        return f"{errors} error(s) in this run"
    limit = delete_limit(max_delete, watch.recorded)
    if limit is not None and len(deleted) > limit:
        return f"{len(deleted)} deletion(s) exceed max_delete={max_delete!r} ({limit} of {watch.recorded} file(s))"
    return None


@dataclass
class MirrorResult:
    """What ``mirror_deletions`` did with the objects whose source files are gone."""

    deleted: list[str] = field(default_factory=list)  # paths relative to the prefix
    retained: list[str] = field(default_factory=list)  # refused by the namespace (403)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    held_back: str | None = None  # why nothing was deleted
    planned: list[str] | None = None  # a dry run: what a run would delete

    def fields(self) -> dict[str, object]:
        """The run result's fields (a dry run's: ``would_delete``, ``would_delete_keys``)."""
        if self.planned is not None:
            planned: dict[str, object] = {"would_delete": len(self.planned), "would_delete_keys": list(self.planned)}
            return {**planned, "mirror_held_back": self.held_back} if self.held_back else planned
        out: dict[str, object] = {
            "mirror_deleted": len(self.deleted), "mirror_retained": len(self.retained),
            "mirror_failed": len(self.failed),
        }
        if self.retained:
            out["mirror_retained_keys"] = list(self.retained)
        if self.failed:
            out["mirror_failed_keys"] = dict(self.failed)
        if self.held_back:
            out["mirror_held_back"] = self.held_back
        return out


async def mirror_deletions(
    client: HCPClient, tracker: TrackerProtocol, bucket: str, final_prefix: str, record_prefix: str, paths: list[str]
) -> MirrorResult:
    """Delete ``paths`` from ``final_prefix`` and forget their records (the next manifest then
    leaves them out). A 403 is a retained object (kept, recorded, reported); any other error
    keeps the object and its record and is reported with its reason."""
    result = MirrorResult()
    for path in paths:
        try:
            await client.s3.delete(bucket, final_prefix + path)
        except Exception as exc:
            if getattr(exc, "status_code", None) == RETAINED_STATUS:
                result.retained.append(path)
            else:
                result.failed.append((path, f"{type(exc).__name__}: {exc}"))
            continue
        tracker.delete(record_prefix + path)
        result.deleted.append(path)
    tracker.flush()
    if result.retained:
        logger.info("mirror_deletions: %d object(s) retained by %s/%s", len(result.retained), bucket, final_prefix)
    return result


def watch_job(
    tracker: TrackerProtocol, staging_prefix: str, include: list[str], exclude: list[str],
    unreadable: list[tuple[str, str]],
) -> DeletionWatch:
    """A watch of what the job holds under ``staging_prefix`` that this scan (the filters' view
    of the source; ``unreadable``: its errors) no longer finds."""
    accepts = GlobFilter(include, exclude)
    return DeletionWatch(tracker.iter_done(staging_prefix), staging_prefix, accepts.accepts if accepts.active else None, unreadable)


async def mirror_or_hold(
    client: HCPClient, tracker: TrackerProtocol, watch: DeletionWatch, errors: int, max_delete: MaxDelete,
    bucket: str, final_prefix: str, record_prefix: str, *, dry_run: bool = False,
) -> MirrorResult | None:
    """``mirror_deletions``: remove what the source deleted unless a safety net holds it back
    (``held_back`` says why); a dry run only plans it (None when nothing is deleted at the source)."""
    held, deleted = mirror_hold_reason(watch, errors, max_delete), watch.deleted
    if dry_run:
        return MirrorResult(held_back=held, planned=[] if held else deleted) if deleted else None
    if held is not None or not deleted:
        return MirrorResult(held_back=held if deleted else None)
    return await mirror_deletions(client, tracker, bucket, final_prefix, record_prefix, deleted)


def deletion_fields(watch: DeletionWatch, names: int = 100) -> dict[str, object]:
    """The run result's ``deleted_at_source`` (count) and ``deleted_at_source_keys`` (the first
    ``names`` paths, relative to the prefix)."""
    deleted = watch.deleted
    out: dict[str, object] = {"deleted_at_source": len(deleted)}
    if deleted:
        out["deleted_at_source_keys"] = deleted[:names]
    return out
