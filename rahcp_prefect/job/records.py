"""Fixity records: each commit's own immutable record of what it committed, never replaced.

An archive under retention or on hold refuses to replace the prefix's ``manifest-sha256.txt``,
so a manifest rewritten per commit cannot cover the files of later nights there. Each commit
that changes what the prefix holds therefore writes a new record, a folder of its own under the
prefix::

    <prefix>.rahcp/records/<UTC time>-<commit id>-<full|delta>/manifest-sha256.txt
    <prefix>.rahcp/records/<UTC time>-<commit id>-<full|delta>/rahcp-mtimes.txt

in the BagIt line format of the root's tag files (paths relative to ``<prefix>``, so
``sha256sum -c`` runs over a record from the downloaded prefix's folder). A record is written
once and never replaced or deleted by the job. ``delta`` lists the files whose line changed (new
or sent again); ``full`` lists every file of the prefix (the first record, every ``FULL_EVERY``-th,
and one after files left the prefix, which a delta cannot say). The time sorts the keys in commit
order, so a reader lists ``.rahcp/records/`` and reads the records newest first, back to and
including the newest ``full`` one, the newest line of a path winning: at most ``FULL_EVERY`` small
GETs per tag file, however many nights the archive holds. A night whose lines are all already in
the records writes nothing. Without any record (a prefix of an older release) the root tag files
are read instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

from rahcp_prefect.client import HCPClient, NotFoundError, PresignedTransferError, RetentionError
from rahcp_prefect.client.digests import bare_etag
from rahcp_prefect.job.manifest import (
    MANIFEST_NAME,
    MTIMES_NAME,
    RAHCP_DIR,
    is_tag_path,
    ManifestError,
    check_manifest,
    manifest_key,
    parse_manifest,
    read_manifest,
    render_manifest,
    write_tag_file,
)
from rahcp_prefect.job.mtimes import check_mtimes, mtimes_key, parse_mtimes, read_mtimes, render_mtimes

logger = logging.getLogger(__name__)

T = TypeVar("T")

RECORDS_DIR = RAHCP_DIR + "records/"
"""The records' folder under a final prefix."""

FULL_EVERY = 32
"""A full record after this many deltas: bounds what a reader reads (GETs per tag file)."""

_RECORD = re.compile(r"(\d{8}T\d{12}Z)-([0-9a-f]{12})-(full|delta)/(.+)")

Line = tuple[str, int | None]
"""One file's record: its SHA-256 and its mtime in ns (None: not recorded)."""


def record_name(kind: str, now: datetime | None = None) -> str:
    """A new record's folder name: UTC time to the microsecond (sorts in commit order), an id."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:12]}-{kind}"


def is_record_key(prefix: str, key: str) -> bool:
    """Whether ``key`` is one of the job's own files under ``prefix`` (records, root tag files)."""
    return key.startswith(prefix) and is_tag_path(key[len(prefix):])


@dataclass
class Fixity:
    """What the records under a prefix say (full keys): the newest SHA-256 and mtime of each
    file, the records read (newest first), and the deltas since the newest full record."""

    digests: dict[str, str] = field(default_factory=dict)
    mtimes: dict[str, int] = field(default_factory=dict)
    records: list[str] = field(default_factory=list)  # record folder names read, newest first
    since_full: int = 0  # deltas newer than the newest full record
    has_full: bool = False
    source: str | None = None  # "records", "manifest" (the root tag files of an older release) or None

    @property
    def found(self) -> bool:
        return self.source is not None

    def line(self, key: str) -> Line | None:
        sha = self.digests.get(key)
        return None if sha is None else (sha, self.mtimes.get(key))


async def record_folders(client: HCPClient, bucket: str, prefix: str) -> list[tuple[str, set[str]]]:
    """``[(record folder, {its file names})]`` under ``prefix``, oldest first (one listing)."""
    folders: dict[str, set[str]] = {}
    async for item in client.s3.iter_objects(bucket, prefix=prefix + RECORDS_DIR):
        match = _RECORD.fullmatch(item["Key"][len(prefix + RECORDS_DIR):])
        if match is not None:
            folders.setdefault(item["Key"][len(prefix + RECORDS_DIR):].rsplit("/", 1)[0], set()).add(match.group(4))
    return sorted(folders.items())


async def read_fixity(client: HCPClient, bucket: str, prefix: str) -> Fixity:
    """The union of the records under ``prefix``, newest record of a path first, back to the
    newest full record; without records, the root manifest and times. ``ManifestError`` when a
    record cannot be read."""
    out = Fixity()
    folders = await record_folders(client, bucket, prefix)
    for folder, names in reversed(folders):
        if MANIFEST_NAME not in names:
            continue  # a record whose manifest never landed (killed while writing): no record
        base = prefix + RECORDS_DIR + folder + "/"
        digests = await _read(client, bucket, base + MANIFEST_NAME, parse_manifest)
        for path, sha in digests.items():
            out.digests.setdefault(prefix + path, sha)
        if MTIMES_NAME in names:
            for path, mtime in (await _read(client, bucket, base + MTIMES_NAME, parse_mtimes)).items():
                out.mtimes.setdefault(prefix + path, mtime)
        out.records.append(folder)
        out.source = "records"
        if folder.endswith("-full"):
            out.has_full = True
            break
        out.since_full += 1
    if out.source is None:
        root = await read_manifest(client, bucket, prefix)
        if root is not None:
            out.digests, out.source = root, "manifest"
            out.mtimes = await read_mtimes(client, bucket, prefix) or {}
    return out


class ArchivedLines:
    """The union of a prefix's records (``read_fixity``), read on the first question only: the
    incremental sync asks about a file the tracker does not know but the prefix holds (the
    tracker lost, or a new job over an archived prefix), which a normal night never does."""

    def __init__(self, client: HCPClient, bucket: str, prefix: str) -> None:
        self._client, self._bucket, self._prefix = client, bucket, prefix
        self._fixity: Fixity | None = None

    async def line(self, rel: str) -> Line | None:
        """``(SHA-256, mtime_ns or None)`` of ``rel``, newest record first; None when no record
        lists it (or they cannot be read: the file is then sent, never wrongly skipped)."""
        if self._fixity is None:
            try:
                self._fixity = await read_fixity(self._client, self._bucket, self._prefix)
            except ManifestError as exc:
                logger.warning("Fixity records of %s/%s not read, files they list are sent again: %s",
                               self._bucket, self._prefix, exc)
                self._fixity = Fixity()
        return self._fixity.line(self._prefix + rel)


async def _read(client: HCPClient, bucket: str, key: str, parse: Callable[[bytes, str], dict[str, T]]) -> dict[str, T]:
    try:
        data = await client.s3.download_bytes(bucket, key)
    except NotFoundError:
        raise ManifestError(f"{bucket}/{key}: listed, but gone when read") from None
    return parse(data, f"{bucket}/{key}")


@dataclass
class RecordPlan:
    """What a commit records: ``kind`` (``full``, ``delta``, or None: nothing changed) and the
    lines (path relative to the prefix -> line); ``current``: every file the prefix holds."""

    kind: str | None
    lines: dict[str, Line]
    current: dict[str, Line]


def plan_record(
    prefix: str, digests: Mapping[str, str], mtimes: Mapping[str, int], fixity: Fixity, listed: Mapping[str, int]
) -> RecordPlan:
    """The record a commit writes. ``digests``/``mtimes``: the job's done files (relative
    paths); a file the records name that is still listed but no longer done (retained: its
    archived object was not replaced) keeps its recorded line; one no longer listed is gone."""
    current: dict[str, Line] = {path: (sha, mtimes.get(path)) for path, sha in digests.items()}
    gone = False
    for key, sha in fixity.digests.items():
        path = key[len(prefix):]
        if path in current:
            continue
        if key in listed:
            current[path] = (sha, fixity.mtimes.get(key))
        else:
            gone = True
    changed = {path: line for path, line in current.items() if fixity.line(prefix + path) != line}
    if not changed and not gone:
        return RecordPlan(None, {}, current)
    full = fixity.source != "records" or not fixity.has_full or gone or fixity.since_full + 1 >= FULL_EVERY
    return RecordPlan("full" if full else "delta", dict(current) if full else changed, current)


def split(lines: Mapping[str, Line]) -> tuple[dict[str, str], dict[str, int]]:
    """``(digests, mtimes)`` of record lines."""
    return {p: sha for p, (sha, _m) in lines.items()}, {p: m for p, (_s, m) in lines.items() if m is not None}


async def write_record(client: HCPClient, bucket: str, prefix: str, plan: RecordPlan) -> str | None:
    """Write ``plan``'s record (its times first, its manifest last: a folder without a manifest
    is no record) and read it back; returns the folder's key, None when nothing changed.
    ``ManifestError`` when what was read back is not what was written."""
    if plan.kind is None:
        return None
    folder = prefix + RECORDS_DIR + record_name(plan.kind) + "/"
    digests, mtimes = split(plan.lines)
    bodies = ([(MTIMES_NAME, render_mtimes(mtimes))] if mtimes else []) + [(MANIFEST_NAME, render_manifest(digests))]
    for name, body in bodies:
        await client.s3.upload(bucket, folder + name, body)
    for name, body in bodies:
        if await client.s3.download_bytes(bucket, folder + name) != body:
            raise ManifestError(f"{bucket}/{folder}{name}: read back, not what the commit wrote")
    return folder


@dataclass
class Recorded:
    """What a commit recorded: the record folder written (None: nothing changed), the files the
    prefix's records cover, what became of the root tag files, and what the read-backs found."""

    record: str | None
    files: int
    root: str  # "written", "unchanged", "not written" or "retained: ..."
    problems: list[str] = field(default_factory=list)


async def record_commit(
    client: HCPClient,
    bucket: str,
    prefix: str,
    digests: Mapping[str, str],
    mtimes: Mapping[str, int],
    listed: Mapping[str, int],
    etags: Mapping[str, str],
) -> Recorded:
    """Record what the commit placed: a new record when a line changed (``plan_record``), then
    the root tag files where the namespace lets them be replaced (``write_root``)."""
    try:
        fixity = await read_fixity(client, bucket, prefix)
    except ManifestError as exc:
        return Recorded(None, 0, "not written", [str(exc)])
    plan = plan_record(prefix, digests, mtimes, fixity, listed)
    folder = await write_record(client, bucket, prefix, plan)
    root, problems = await write_root(client, bucket, prefix, plan.current, listed, etags, folder is not None)
    return Recorded(folder, len(plan.current), root, problems)


async def write_root(
    client: HCPClient,
    bucket: str,
    prefix: str,
    current: Mapping[str, Line],
    listed: Mapping[str, int],
    etags: Mapping[str, str],
    changed: bool,
) -> tuple[str, list[str]]:
    """The prefix's current ``manifest-sha256.txt`` and ``rahcp-mtimes.txt`` (a convenience: the
    records are the fixity record): written after a record was, or when missing, only where its
    bytes change (the listed ETag is their MD5), and read back. A refusal (retention, hold) leaves
    the earlier ones; returns ``(what happened, problems read back)``."""
    digests, times = split(current)
    if not changed and (manifest_key(prefix) in listed or not current):
        return "unchanged", []
    wrote = False
    for key, body in ((manifest_key(prefix), render_manifest(digests)), (mtimes_key(prefix), render_mtimes(times))):
        if bare_etag(etags.get(key, "")) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            continue
        try:
            await write_tag_file(client, bucket, key, body, exists=key in listed)
        except (RetentionError, PresignedTransferError) as exc:
            if isinstance(exc, PresignedTransferError) and exc.status_code != 403:
                raise
            logger.info("The prefix's %s of an earlier commit stays (retention or hold): %s", key, exc)
            return "retained: the prefix's manifest of an earlier commit stays; its fixity records list every file", []
        wrote = True
    if not wrote:
        return "unchanged", []
    problems = await check_manifest(client, bucket, prefix, listed, digests)
    return "written", problems + await check_mtimes(client, bucket, prefix, times, digests)
