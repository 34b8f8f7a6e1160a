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

import heapq
import itertools
import logging
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.manifest import (
    MANIFEST_NAME,
    MTIMES_NAME,
    RAHCP_DIR,
    ManifestError,
    is_tag_path,
    manifest_key,
    parse_manifest_line,
)
from rahcp_prefect.job.mtimes import mtimes_key, parse_mtime_line
from rahcp_prefect.job.tagstream import fetch, read_sorted

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


@dataclass
class RecordChain:
    """The tag files a reader of a prefix's records reads, fetched to local disk: the records
    newest first back to and including the newest full one (or, without records, the root
    manifest and times of an older release), as ``(manifest, times or None)`` file pairs."""

    files: list[tuple[Path, Path | None]] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # record folder names, newest first
    since_full: int = 0
    has_full: bool = False
    source: str | None = None  # "records", "manifest" or None (nothing recorded)
    where: list[str] = field(default_factory=list)  # bucket/key of each manifest, for errors

    def lines(self) -> Iterator[tuple[str, str | None, int | None]]:
        """``(path relative to the prefix, SHA-256, mtime_ns)`` of every path the chain lists,
        in path order, the newest record's SHA-256 and the newest record's time winning (each
        None where no record gives one): a merge of the records' sorted lines, one line of
        each in memory. ``ManifestError`` names a bad line."""
        streams: list[Iterator[tuple[str, int, int, str | int]]] = []
        for age, (manifest, times) in enumerate(self.files):
            where = self.where[age]
            streams.append(_tagged(read_sorted(manifest, parse_manifest_line, where), age, 0))
            if times is not None:
                streams.append(_tagged(read_sorted(times, parse_mtime_line, where.rsplit("/", 1)[0] + "/" + MTIMES_NAME), age, 1))
        for path, group in itertools.groupby(heapq.merge(*streams), key=lambda entry: entry[0]):
            sha: str | None = None
            mtime: int | None = None
            for _path, _age, kind, value in group:  # newest record first
                if kind == 0 and sha is None:
                    sha = str(value)
                elif kind == 1 and mtime is None:
                    mtime = int(value)
            yield path, sha, mtime


def _tagged(lines: Iterator[tuple[str, T]], age: int, kind: int) -> Iterator[tuple[str, int, int, T]]:
    return ((path, age, kind, value) for path, value in lines)


async def fetch_chain(client: HCPClient, bucket: str, prefix: str, workdir: Path) -> RecordChain:
    """List the records under ``prefix`` and fetch those a reader reads into ``workdir``
    (``RecordChain``): at most ``FULL_EVERY`` records' tag files, whatever the archive's age."""
    chain = RecordChain()
    workdir.mkdir(parents=True, exist_ok=True)
    for folder, names in reversed(await record_folders(client, bucket, prefix)):
        if MANIFEST_NAME not in names:
            continue  # a record whose manifest never landed (killed while writing): no record
        base = prefix + RECORDS_DIR + folder + "/"
        manifest = await _fetch_listed(client, bucket, base + MANIFEST_NAME, workdir / f"{len(chain.files)}.m")
        times = None
        if MTIMES_NAME in names:
            times = await _fetch_listed(client, bucket, base + MTIMES_NAME, workdir / f"{len(chain.files)}.t")
        chain.files.append((manifest, times))
        chain.where.append(f"{bucket}/{base}{MANIFEST_NAME}")
        chain.records.append(folder)
        chain.source = "records"
        if folder.endswith("-full"):
            chain.has_full = True
            break
        chain.since_full += 1
    if chain.source is None and await fetch(client, bucket, manifest_key(prefix), workdir / "root.m"):
        times = workdir / "root.t"
        has_times = await fetch(client, bucket, mtimes_key(prefix), times)
        chain.files.append((workdir / "root.m", times if has_times else None))
        chain.where.append(f"{bucket}/{manifest_key(prefix)}")
        chain.source = "manifest"
    return chain


async def _fetch_listed(client: HCPClient, bucket: str, key: str, dest: Path) -> Path:
    if not await fetch(client, bucket, key, dest):
        raise ManifestError(f"{bucket}/{key}: listed, but gone when read")
    return dest


async def read_fixity(client: HCPClient, bucket: str, prefix: str) -> Fixity:
    """The union of the records under ``prefix`` (``RecordChain.lines``) in memory, for a reader
    that looks files up by key; ``ManifestError`` when a record cannot be read."""
    out = Fixity()
    with tempfile.TemporaryDirectory(prefix="rahcp-records-") as workdir:
        chain = await fetch_chain(client, bucket, prefix, Path(workdir))
        for path, sha, mtime in chain.lines():
            if sha is not None:
                out.digests[prefix + path] = sha
            if mtime is not None:
                out.mtimes[prefix + path] = mtime
    out.records, out.since_full, out.has_full, out.source = chain.records, chain.since_full, chain.has_full, chain.source
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
