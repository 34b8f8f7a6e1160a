"""A commit's fixity record, planned and written as a stream in flat memory.

After the final check, the commit walks four sorted streams in step, in key order: the final
prefix's listing, the tracker's done records (their SHA-256, then their times), and the union of
the prefix's records (``records.RecordChain``). Each path's current line (the job's, or a record's
for a file the job no longer holds as done but the prefix still lists: a retained one) is
written to the prefix's full tag files on local disk, and each line the records do not already
say to the delta's (``tagstream.TagWriter``). Then one of them becomes the commit's record
(``records.py`` says when a record is full), and the full one the prefix's root manifest and
times where they may be replaced and their bytes change. Nothing of the job is held in memory
but a line of each stream; a manifest of ten million files goes up as a multipart upload of its
file on disk.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rahcp_prefect.bulk.scanner import iter_listing
from rahcp_prefect.client import HCPClient, PresignedTransferError, RetentionError
from rahcp_prefect.client.digests import bare_etag
from rahcp_prefect.job.manifest import (
    MANIFEST_NAME,
    MTIMES_NAME,
    ManifestError,
    check_manifest,
    is_tag_path,
    manifest_key,
    manifest_line,
    parse_manifest,
    write_tag_file,
)
from rahcp_prefect.job.merge import outer_join
from rahcp_prefect.job.mtimes import check_mtimes, mtime_line, mtimes_key, parse_mtimes
from rahcp_prefect.job.records import FULL_EVERY, RECORDS_DIR, Line, RecordChain, fetch_chain, record_name
from rahcp_prefect.job.staging import StagingPlan, listing
from rahcp_prefect.job.tagstream import ListingSpool, TagWriter, read_back_differs
from rahcp_prefect.tracker.protocol import TrackerProtocol

logger = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")

#: What became of the root tag files when the namespace refused to replace them.
ROOT_RETAINED = "retained: the prefix's manifest of an earlier commit stays; its fixity records list every file"


@dataclass
class Recorded:
    """What a commit recorded: the record folder written (None: nothing changed), the files the
    prefix's records cover, what became of the root tag files, and what the read-backs found."""

    record: str | None
    files: int
    root: str  # "written", "unchanged", "not written" or "retained: ..."
    problems: list[str] = field(default_factory=list)


class TagPair:
    """A manifest and its times, written line by line to local files (``TagWriter``)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.manifest: TagWriter[str] = TagWriter(folder / f"{name}.manifest", manifest_line)
        self.times: TagWriter[int] = TagWriter(folder / f"{name}.times", mtime_line)

    def add(self, path: str, line: Line) -> None:
        sha, mtime = line
        self.manifest.add(path, sha)
        if mtime is not None:
            self.times.add(path, mtime)

    def close(self) -> None:
        self.manifest.close()
        self.times.close()


@dataclass
class RecordLines:
    """What the merge wrote: every current line (``current``), the lines the records do not
    already say (``changed``), whether a recorded file left the prefix (``gone``: only a full
    record can say so) and the ETags of the root tag files the listing showed."""

    current: TagPair
    changed: TagPair
    gone: bool = False
    root_etags: dict[str, str] = field(default_factory=dict)

    def kind(self, chain: RecordChain) -> str | None:
        """The record to write: ``full``, ``delta``, or None when no line changed."""
        if not self.changed.manifest.lines and not self.gone:
            return None
        full = chain.source != "records" or not chain.has_full or self.gone or chain.since_full + 1 >= FULL_EVERY
        return "full" if full else "delta"


async def record_commit(
    client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan, listing: ListingSpool | None = None
) -> Recorded:
    """Record what the commit placed: a new record when a line changed, then the root tag files
    where the namespace lets them be replaced (``write_root``). ``listing``: the final check's
    listing, kept on disk (else the final prefix is listed again). A record that cannot be read
    is the result's problem (the commit then fails its check)."""
    bucket, prefix = plan.bucket, plan.final_prefix
    with tempfile.TemporaryDirectory(prefix="rahcp-record-") as workdir:
        work = Path(workdir)
        try:
            chain = await fetch_chain(client, bucket, prefix, work / "records")
            hashed = await hash_unrecorded(client, tracker, plan)
            lines = RecordLines(TagPair(work, "current"), TagPair(work, "changed"))
            try:
                await merge_lines(client, tracker, plan, chain, hashed, lines, listing)
            finally:
                lines.current.close()
                lines.changed.close()
        except ManifestError as exc:
            return Recorded(None, 0, "not written", [str(exc)])
        kind = lines.kind(chain)
        folder = None
        if kind is not None:
            folder = await write_record(client, bucket, prefix, kind, lines.current if kind == "full" else lines.changed)
        root, problems = await write_root(client, bucket, prefix, lines, folder is not None, work / "read-back")
        return Recorded(folder, lines.current.manifest.lines, root, problems)


async def hash_unrecorded(client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan) -> dict[str, str]:
    """``{path: SHA-256}`` of the job's done files held without one (sent by an older release,
    or skipped as already there), hashed from the final prefix: a record lists every file. One
    that cannot be read fails the commit (``ManifestError``). Only those files are held."""
    keys = [
        (plan.final_key(key), record.size)
        for key, record in tracker.iter_done_digests(plan.staging_prefix)
        if record.sha256 is None and not is_tag_path(key[len(plan.staging_prefix):])
    ]
    if not keys:
        return {}
    from rahcp_prefect.bulk.verify import hash_objects  # the engine, only when needed

    hashed = await hash_objects(client, plan.bucket, keys=keys)
    if hashed.errors:
        first = sorted(hashed.errors.items())[:5]
        raise ManifestError(
            f"manifest of {plan.bucket}/{plan.final_prefix}: {len(hashed.errors)} file(s) without a recorded "
            f"SHA-256 could not be read to hash them: " + "; ".join(f"{k}: {e}" for k, e in first)
        )
    return {key[len(plan.final_prefix):]: found.sha256 for key, found in hashed.digests.items()}


async def merge_lines(
    client: HCPClient,
    tracker: TrackerProtocol,
    plan: StagingPlan,
    chain: RecordChain,
    hashed: dict[str, str],
    lines: RecordLines,
    listing: ListingSpool | None = None,
) -> None:
    """Walk the final listing (``listing``, or the prefix listed again), the job's done records
    and the records' union in step, writing each path's current line and each changed one into
    ``lines``."""
    staged = len(plan.staging_prefix)

    async def objects() -> AsyncIterator[tuple[str, str]]:
        if listing is not None:
            for key, etag in listing:
                yield key, etag
            return
        async for key, _size, found in iter_listing(client.s3, plan.bucket, plan.final_prefix):
            yield key, str(found or "")

    async def listed() -> AsyncIterator[tuple[str, str]]:
        async for key, etag in objects():
            if key in (manifest_key(plan.final_prefix), mtimes_key(plan.final_prefix)):
                lines.root_etags[key] = etag
            relative = key[len(plan.final_prefix):]
            if not is_tag_path(relative):
                yield relative, etag

    digests = (
        (key[staged:], record.sha256 or hashed.get(key[staged:]))
        for key, record in tracker.iter_done_digests(plan.staging_prefix)
        if not is_tag_path(key[staged:])
    )
    times = ((key[staged:], mtime) for key, _size, mtime in tracker.iter_done(plan.staging_prefix) if not is_tag_path(key[staged:]))
    recorded = ((path, (sha, mtime)) for path, sha, mtime in chain.lines() if sha is not None)
    done = _pairs(outer_join(_pairs(outer_join(listed(), digests)), times))
    async for path, state, old in outer_join(done, recorded):
        now = _current(state, old)
        if now is None:
            lines.gone = lines.gone or (old is not None and state is None)
            continue
        lines.current.add(path, now)
        if old != now:
            lines.changed.add(path, now)


def _current(state: Any, old: Line | None) -> Line | None:
    """A path's current line: the job's (listed and done: its SHA-256 and time), else the
    records' for a file still listed (the job no longer holds it as done: retained), else none
    (``state`` is ``((etag, sha), mtime)`` of the listing, the digests and the times)."""
    if state is None:
        return None
    (etag, sha), mtime = state
    if sha is not None and etag is not None:
        return sha, mtime
    return old if etag is not None else None


async def _pairs(joined: AsyncIterator[tuple[str, T | None, V | None]]) -> AsyncIterator[tuple[str, tuple[T | None, V | None]]]:
    """An ``outer_join``'s triples as ``(key, (left, right))``, to join with another stream."""
    async for key, left, right in joined:
        yield key, (left, right)


async def write_record(client: HCPClient, bucket: str, prefix: str, kind: str, pair: TagPair) -> str:
    """Write a record of ``pair``'s lines (its times first, its manifest last: a folder without
    a manifest is no record) and read it back; returns the folder's key. ``ManifestError``
    when what was read back is not what was written."""
    folder = prefix + RECORDS_DIR + record_name(kind) + "/"
    files = ([(MTIMES_NAME, pair.times)] if pair.times.lines else []) + [(MANIFEST_NAME, pair.manifest)]
    for name, writer in files:
        await client.s3.upload(bucket, folder + name, writer.path)
    for name, writer in files:
        problem = await read_back_differs(client, bucket, folder + name, writer, writer.path.with_suffix(".read"))
        if problem:
            raise ManifestError(problem)
    return folder


async def write_root(
    client: HCPClient, bucket: str, prefix: str, lines: RecordLines, changed: bool, scratch: Path
) -> tuple[str, list[str]]:
    """The prefix's current ``manifest-sha256.txt`` and ``rahcp-mtimes.txt`` (a convenience: the
    records are the fixity record): written after a record was, or when missing, only where its
    bytes change (the listed ETag is their MD5), and read back. A refusal (retention, hold) leaves
    the earlier ones; returns ``(what happened, problems read back)``."""
    current, listed = lines.current, lines.root_etags
    if not changed and (manifest_key(prefix) in listed or not current.manifest.lines):
        return "unchanged", []
    files: list[tuple[str, TagWriter[Any]]] = [(manifest_key(prefix), current.manifest), (mtimes_key(prefix), current.times)]
    wrote = False
    for key, writer in files:
        if bare_etag(listed.get(key, "")) == writer.md5:
            continue
        try:
            await write_tag_file(client, bucket, key, writer.path, exists=key in listed)
        except (RetentionError, PresignedTransferError) as exc:
            if isinstance(exc, PresignedTransferError) and exc.status_code != 403:
                raise
            logger.info("The prefix's %s of an earlier commit stays (retention or hold): %s", key, exc)
            return ROOT_RETAINED, []
        wrote = True
    if not wrote:
        return "unchanged", []
    differs = [problem for key, writer in files if (problem := await read_back_differs(client, bucket, key, writer, scratch))]
    return "written", (await explain_root(client, bucket, prefix, current) or differs) if differs else []


async def explain_root(client: HCPClient, bucket: str, prefix: str, current: TagPair) -> list[str]:
    """What is wrong with root tag files that were not read back as written (another writer
    replaced them): line by line, the files, the written lines and the listing read whole. Only
    this rare path holds the job in memory."""
    digests = parse_manifest(current.manifest.path.read_bytes())
    times = parse_mtimes(current.times.path.read_bytes())
    return await check_manifest(client, bucket, prefix, await listing(client, bucket, prefix), digests) + await check_mtimes(
        client, bucket, prefix, times, digests
    )
