"""``bulk_download``: every object under ``bucket/prefix`` (or an explicit work list) to disk.

Pipeline: the listing, paged lazily -> include/exclude -> refuse keys that would land outside
``dest_dir`` -> skip files on disk as the job wrote them (size and mtime_ns as recorded), or,
unknown to the tracker, with the listed size (``sync.decide_download``) -> presign in batches ->
``workers`` coroutines GET each object into ``.rahcp-part.<name>`` next to its final path
(small objects in one shot, those at or above ``stream_threshold`` as ``multipart_concurrency``
parallel ranged GETs, resumable after a crash and checked against the ETag: see
``client.ranged``), verify and validate it there, then rename it into place. A file therefore
appears under its final name only when it is complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from rahcp_prefect.client.errors import ChecksumMismatchError, ObjectChangedError, PresignedTransferError
from rahcp_prefect.client.multipart import part_size_for
from rahcp_prefect.client.ranged import RangedDownload, discard

from .config import BulkDownloadConfig
from .errors import VerificationError
from .filters import GlobFilter
from .paths import UnsafeKeyError, is_inside, local_path, relative_key, temp_name
from .presigner import Presigner
from .run import run_job
from .scanner import iter_listing
from .stats import Recorder, TransferStats
from .sync import Change, SortedRecords, decide_download, local_state
from .validate_file import run_validator

logger = logging.getLogger(__name__)

DownloadItem = tuple[str, int, "str | None", str]
"""``(key, size, etag, final OS path)``."""

_YIELD_EVERY = 1024


class _Download:
    """One run's state and the per-file work of its workers."""

    def __init__(self, cfg: BulkDownloadConfig, rec: Recorder) -> None:
        self.cfg = cfg
        self.rec = rec
        self.bucket = cfg.bucket
        self.s3 = cfg.client.s3
        self.data = cfg.client.data
        self.filter = GlobFilter(cfg.include, cfg.exclude)
        os.makedirs(cfg.dest_dir, exist_ok=True)
        self.base = os.path.realpath(cfg.dest_dir)
        self.validate = cfg.validate_file
        self.verify = cfg.verify_download
        self._safe_dirs: set[str] = {self.base}
        transfer = cfg.client.transfer_settings
        self.range_chunk = transfer.multipart_chunk
        self.range_concurrency = transfer.multipart_concurrency

    # -- the producer side -----------------------------------------------------------------

    async def _sources(self) -> AsyncIterator[tuple[str, int, str | None]]:
        cfg = self.cfg
        if cfg.retry_errors:
            entries: Iterable[tuple[str, int]] | None = cfg.tracker.error_entries()
        else:
            entries = cfg.entries
        if entries is None:
            async for obj in iter_listing(self.s3, self.bucket, cfg.prefix):
                yield obj
            return
        for key, size in entries:
            yield key, size, None

    async def items(self) -> AsyncIterator[DownloadItem]:
        """Objects that need a transfer, lazily; skipped and refused ones are counted."""
        cfg = self.cfg
        rec = self.rec
        prefix = cfg.prefix
        base = self.base
        accepts = self.filter.accepts if self.filter.active else None
        records = SortedRecords(cfg.tracker.iter_done(prefix)) if cfg.skip_done else None
        seen = 0
        async for key, size, etag in self._sources():
            seen += 1
            if not seen % _YIELD_EVERY:
                await asyncio.sleep(0)
            try:
                rel = relative_key(key, prefix)
                if rel is None:  # a folder marker: nothing to write
                    rec.skipped(key, size)
                    continue
                if accepts is not None and not accepts(rel):
                    continue
                dest = local_path(base, rel)
            except UnsafeKeyError as exc:
                rec.error(key, size, exc)
                continue
            local = local_state(dest)
            if local is not None:
                record = records.lookup(key) if records is not None else None
                change = decide_download(local, record, size, adopt=True)
                if change is Change.unchanged:
                    rec.skipped(key, size)
                    continue
                if change is Change.existing:
                    rec.skipped(key, size, mark=True, etag=etag, mtime_ns=local[1])
                    continue
            yield key, size, etag, dest

    # -- the worker side -------------------------------------------------------------------

    def _parent_ready(self, parent: str) -> None:
        """Create ``parent`` once, and make sure it resolves inside ``dest_dir``."""
        if parent in self._safe_dirs:
            return
        os.makedirs(parent, exist_ok=True)
        if not is_inside(self.base, parent):
            raise UnsafeKeyError(f"refused: {parent!r} resolves outside {self.base!r} (symlink)")
        self._safe_dirs.add(parent)

    async def handle(self, item: DownloadItem, url: str | None) -> BaseException | None:
        """Download one object and record the outcome; returns its error (None when it went
        through), never raises (except cancellation)."""
        key, size, etag, dest = item
        temp: str | None = None
        try:
            parent, _, name = dest.rpartition(os.sep)
            self._parent_ready(parent)
            temp = parent + os.sep + temp_name(name)
            got, mtime = await self._fetch(key, size, etag, temp, url)
            if self.verify and got != size:
                raise VerificationError(f"verify_download: {self.bucket}/{key}: got {got} bytes, listed {size}")
            if self.validate is not None:
                await run_validator(self.validate, temp)
            os.replace(temp, dest)
        except Exception as exc:
            if temp is not None:
                discard(Path(temp))
            self.rec.error(key, size, exc)
            return exc
        # The mtime the file got once written: renames keep it, so a rerun knows the file is
        # as the job wrote it (a validator that touched it is caught as changed: fetched again).
        self.rec.ok(key, got, etag=etag, verified=self.verify, validated=self.validate is not None, mtime_ns=mtime)
        return None

    async def _fetch(
        self, key: str, size: int, etag: str | None, temp: str, url: str | None
    ) -> tuple[int, int]:
        """GET ``key`` into ``temp``: ``(bytes, mtime_ns once written)``; a 403 (expired URL)
        is presigned again once (a ranged download then carries on with the ranges it has)."""
        what = f"{self.bucket}/{key}"
        if url is None:
            url = await self.s3.presign_get(self.bucket, key)
        try:
            return await self._get(key, url, what, size, etag, temp)
        except PresignedTransferError as exc:
            if exc.status_code != 403:
                raise
            self.rec.retried()
            url = await self.s3.presign_get(self.bucket, key)
            return await self._get(key, url, what, size, etag, temp)

    async def _get(
        self, key: str, url: str, what: str, size: int, etag: str | None, temp: str
    ) -> tuple[int, int]:
        if size < self.cfg.stream_threshold or size == 0:
            data = await self.data.get_bytes(url, what=what)
            return len(data), _write_file(temp, data)
        if etag is None:  # a work list: the ETag names the object a resume may continue
            etag = (await self.s3.head(self.bucket, key)).get("etag")
        ranged = RangedDownload(
            self.data,
            url,
            Path(temp),
            size,
            etag,
            range_size=part_size_for(size, self.range_chunk),
            concurrency=self.range_concurrency,
            what=what,
            chunk_size=self.cfg.chunk_size,
        )
        try:
            result = await ranged.run()
        except (ObjectChangedError, ChecksumMismatchError) as exc:
            raise VerificationError(str(exc)) from exc
        st = os.stat(temp)
        return (st.st_size if self.verify else result.size), st.st_mtime_ns


_O_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


def _write_file(path: str, data: bytes) -> int:
    """Create or truncate ``path`` with ``data`` (``os.write``: no file object per file);
    returns its mtime_ns once written (``fstat`` on the open file: no path lookup)."""
    fd = os.open(path, _O_WRITE, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)


async def bulk_download(cfg: BulkDownloadConfig) -> TransferStats:
    """Download ``cfg.prefix`` (or ``cfg.entries``) into ``cfg.dest_dir``; return the stats.

    Resumable: files already on disk with the listed size are skipped. Keys that would land
    outside ``dest_dir`` are refused (marked error), never written.
    """
    rec = Recorder.for_config(cfg)
    job = _Download(cfg, rec)
    presigner: Presigner[DownloadItem] = Presigner(
        job.s3, cfg.bucket, method="get_object", batch_size=cfg.presign_batch_size
    )
    return await run_job("bulk.download", cfg, rec, presigner, job.items(), job.handle, size_at=1)
