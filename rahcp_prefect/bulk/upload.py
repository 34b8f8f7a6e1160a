"""``bulk_upload``: a local tree (or an explicit work list) to ``bucket/prefix``.

Pipeline: lazy scan in key order -> include/exclude -> the sync decision per file (``sync``):
skip what the tracker holds as done with the same size and mtime (``skip_done``), send it again
when ``skip_existing``'s listing no longer holds it, adopt what the listing holds with the same
size and the tracker does not know (``skip_existing``) -> presign in
batches -> ``workers`` coroutines PUT the files (small ones read in one go, larger ones
streamed, files at or above the multipart threshold in parallel parts) -> buffered tracker marks.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rahcp_prefect.client.digests import Uploaded
from rahcp_prefect.client.represign import presigned_transfer
from rahcp_prefect.client.resume import PartStore
from rahcp_prefect.client.overwrite import write_over

from .config import BulkUploadConfig
from .errors import RUN_STOPPING_ERRORS, FileChangedError, VerificationError
from .exclusions import NeverUpload
from .existing import RemoteSizes, common_prefix
from .filters import GlobFilter
from .paths import check_relpath
from .presigner import Presigner
from .run import run_job
from .scanner import iter_listing, scan_tree
from .stats import Recorder, TransferStats
from .sync import Change, SortedRecords, decide
from .validate_file import run_validator
from .validation import (
    MAX_KEY_BYTES,
    UnstorableNameError,
    key_problem,
    key_room,
    name_problem,
    shown,
    utf8_length,
)

logger = logging.getLogger(__name__)

UploadItem = tuple[str, str, int, int]
"""``(key, local OS path, size at scan time, mtime_ns at scan time)``."""

_YIELD_EVERY = 1024
"""Scanned entries between two yields to the event loop (long runs of skipped files)."""


def check_source_dir(source_dir: Path) -> None:
    """Raise before anything starts if ``source_dir`` is missing, not a directory or unreadable."""
    if not source_dir.exists():
        raise FileNotFoundError(f"source_dir does not exist: {source_dir}")
    if not source_dir.is_dir():
        raise NotADirectoryError(f"source_dir is not a directory: {source_dir}")
    try:
        with os.scandir(source_dir) as entries:
            next(entries, None)
    except PermissionError as exc:
        raise PermissionError(f"source_dir is not readable: {source_dir} ({exc.strerror})") from None


class _Upload:
    """One run's state and the per-file work of its workers."""

    def __init__(self, cfg: BulkUploadConfig, rec: Recorder) -> None:
        self.cfg = cfg
        self.rec = rec
        self.bucket = cfg.bucket
        client = cfg.client
        self.s3 = client.s3
        self.data = client.data
        self.threshold = client.transfer_settings.multipart_threshold
        self.small_limit = cfg.chunk_size
        self.filter = GlobFilter(cfg.include, cfg.exclude)
        self.root = os.fspath(cfg.source_dir)
        self.validate = cfg.validate_file
        self.verify = cfg.verify_upload
        # The tracker records the parts of each multipart upload: a rerun sends only the missing.
        self.parts = cfg.tracker if isinstance(cfg.tracker, PartStore) else None

    # -- the producer side -----------------------------------------------------------------

    def wants_url(self, item: UploadItem) -> bool:
        """Multipart files are presigned part by part, not in the batch."""
        return item[2] < self.threshold

    def _path_of(self, rel: str) -> str:
        return self.root + os.sep + os.sep.join(check_relpath(rel))

    def _scan_error(self, rel: str, exc: BaseException, size: int = 0) -> None:
        key = self.cfg.prefix + rel
        # A directory (rel ends in "/") is not a key, nor is a path too long for one: count and
        # report it, do not mark it (the tracker never receives what it cannot store).
        self.rec.error(key, size, exc, mark=not rel.endswith("/") and utf8_length(key) <= MAX_KEY_BYTES)

    def _explicit(self, entries: Iterable[tuple[Any, ...]], restat: bool) -> list[tuple[str, str, int, int]]:
        """Checked ``(rel, path, size, mtime_ns)`` of a work list of ``(rel, size)`` or
        ``(rel, size, mtime_ns)``; a file without its mtime is stat'ed. Bad entries are
        recorded as errors. Sorted, for the lookups in key order."""
        accepts = self.filter.accepts if self.filter.active else None
        room = key_room(self.cfg.prefix)
        out: list[tuple[str, str, int, int]] = []
        for entry in entries:
            rel, size = entry[0], entry[1]
            mtime = entry[2] if len(entry) > 2 else None
            odd = name_problem(rel) or key_problem(rel, room)
            if odd is not None:
                rel = shown(rel)
            if accepts is not None and not accepts(rel):
                continue
            if odd is not None:
                self._scan_error(rel, UnstorableNameError(odd), size)
                continue
            try:
                path = self._path_of(rel)
                if restat or mtime is None:
                    st = os.stat(path)
                    size, mtime = st.st_size, st.st_mtime_ns
            except (OSError, ValueError) as exc:
                self.rec.error(self.cfg.prefix + rel, size, exc)
                continue
            out.append((rel, path, size, mtime))
        if self.cfg.skip_existing or self.cfg.skip_done:
            out.sort()
        return out

    def _retry_entries(self) -> Iterator[tuple[str, int]]:
        prefix = self.cfg.prefix
        for key, size in self.cfg.tracker.error_entries():
            if key.startswith(prefix):
                yield key[len(prefix):], size
            else:
                logger.warning("error entry %r is not under prefix %r; left alone", key, prefix)

    def _local(self) -> tuple[Iterable[tuple[str, str, int, int]], str]:
        """The local files in key order, and the prefix to list (and read records under)."""
        cfg = self.cfg
        if cfg.retry_errors or cfg.entries is not None:
            if cfg.retry_errors:
                files = self._explicit(self._retry_entries(), restat=True)
            else:
                assert cfg.entries is not None
                files = self._explicit(cfg.entries, restat=False)
            narrowed = common_prefix(files[0][0], files[-1][0]) if files else ""
            return files, cfg.prefix + narrowed
        select = self.filter.accepts if self.filter.active else None
        walk = scan_tree(
            self.root,
            follow_symlinks=cfg.follow_symlinks,
            on_error=self._scan_error,
            select=select,
            key_room=key_room(cfg.prefix),
            skip=NeverUpload.for_tracker(self.root, cfg.tracker),
        )
        return walk, cfg.prefix

    async def items(self) -> AsyncIterator[UploadItem]:
        """Files that need a transfer, lazily; skipped ones are counted on the way."""
        cfg = self.cfg
        rec = self.rec
        prefix = cfg.prefix
        files, list_prefix = self._local()
        records = SortedRecords(cfg.tracker.iter_done(list_prefix)) if cfg.skip_done else None
        remote = (
            RemoteSizes(iter_listing(self.s3, self.bucket, list_prefix)) if cfg.skip_existing else None
        )
        seen = 0
        try:
            for rel, path, size, mtime in files:
                seen += 1
                if not seen % _YIELD_EVERY:
                    await asyncio.sleep(0)
                key = prefix + rel
                record = records.lookup(key) if records is not None else None
                found = None
                if remote is not None and (record is None or record == (size, mtime)):
                    found = await remote.lookup(key)
                stored = found[0] if found is not None else None
                change = decide(size, mtime, record, stored, listed=remote is not None, adopt=True)
                if change is Change.unchanged:
                    rec.skipped(key, size)
                    continue
                if change is Change.existing:
                    assert found is not None
                    rec.skipped(key, size, mark=True, etag=found[1], mtime_ns=mtime)
                    continue
                yield key, path, size, mtime
        finally:
            if remote is not None:
                await remote.aclose()

    # -- the worker side -------------------------------------------------------------------

    async def handle(self, item: UploadItem, url: str | None) -> BaseException | None:
        """Upload one file and record the outcome; returns its error (None when it went
        through), never raises (except cancellation and ``RUN_STOPPING_ERRORS``, which end the
        whole transfer)."""
        key, path, size, mtime = item
        try:
            if self.validate is not None:
                await run_validator(self.validate, path)
            sent, _ = await self._store(key, path, size, mtime, url)
            if self.verify:
                await self._verify(key, size)
        except FileChangedError as exc:
            return await self._defer(key, size, exc)
        except RUN_STOPPING_ERRORS:
            raise
        except Exception as exc:
            changed = _changed(path, size, mtime)
            if changed is not None:  # e.g. S3 refused bytes that changed while they streamed
                return await self._defer(key, size, changed)
            self.rec.error(key, size, exc)
            return exc
        self.rec.ok(
            key,
            size,
            etag=sent.etag,
            verified=self.verify,
            validated=self.validate is not None,
            checked=True,
            sha256=sent.sha256,
            md5=sent.md5,
            mtime_ns=mtime,
        )
        return None

    async def _defer(self, key: str, size: int, exc: FileChangedError) -> BaseException | None:
        """Leave a file that changed or vanished while it was sent out of this run: never a
        failure. A copy stored before the change was seen is deleted and the key's record
        forgotten, so staging and the tracker agree without it (an earlier copy and its record,
        when nothing was stored, stay as they were); the next run sends the file."""
        if exc.stored:
            try:
                await self.s3.delete(self.bucket, key)
                self.cfg.tracker.delete(key)
            except Exception as cleanup:
                self.rec.error(key, size, cleanup)
                return cleanup
        self.rec.deferred(key, size, exc.vanished)
        return None

    def _store(
        self, key: str, path: str, size: int, mtime: int, url: str | None
    ) -> Awaitable[tuple[Uploaded, bool]]:
        """Send one file: the awaitable of ``write_over`` (no coroutine of its own per file).

        A namespace without versions or the overwrite option refuses a write onto an existing
        key (409: HCP's default): that object is deleted and the file sent again, with backoff
        while HCP still refuses the name for a moment after the delete. The local file is the
        source, so a kill in between loses nothing (the next run sends it); an object under
        retention or on hold is not deleted (``RetentionError``)."""
        send: Callable[[], Awaitable[Uploaded]]
        if size >= self.threshold:
            send = lambda: self._multipart(key, path, size, mtime)  # noqa: E731
        else:
            send = lambda: self._put(key, path, size, mtime, url)  # noqa: E731
        return write_over(send, lambda: self.s3.delete(self.bucket, key), f"{self.bucket}/{key}")

    def _put(self, key: str, path: str, size: int, mtime: int, url: str | None) -> Awaitable[Uploaded]:
        """One PUT: a small file is read here and its transfer handed back as an awaitable (no
        coroutine of its own per file); a larger one is streamed (``_put_streamed``)."""
        what = f"{self.bucket}/{key}"
        presign = lambda: self.s3.presign_put(self.bucket, key)  # noqa: E731
        if size > self.small_limit:
            return self._put_streamed(path, size, mtime, url, what, presign)
        # One read, no stat: a rewrite after the scan moves the mtime past the recorded one,
        # so the next run sends the file again.
        body = _read_exactly(path, size)
        data = self.data
        return presigned_transfer(
            presign, lambda fresh: data.put_bytes(fresh, body, what=what), url, on_presign_again=self.rec.retried
        )

    async def _put_streamed(
        self, path: str, size: int, mtime: int, url: str | None, what: str, presign: Callable[[], Awaitable[str]]
    ) -> Uploaded:
        """A file above ``chunk_size`` streamed from disk; its size and mtime are checked before
        and after, so bytes rewritten in place while they stream are never recorded done."""
        _check_unchanged(path, size, mtime)
        chunk = self.cfg.chunk_size
        sent = await presigned_transfer(
            presign,
            lambda fresh: self.data.put_file(fresh, Path(path), size, what=what, chunk_size=chunk),
            url,
            on_presign_again=self.rec.retried,
        )
        _check_unchanged(path, size, mtime, stored=True)
        return sent

    async def _multipart(self, key: str, path: str, size: int, mtime: int) -> Uploaded:
        _check_unchanged(path, size, mtime)
        sent = await self.s3.upload_multipart_digests(
            self.bucket, key, Path(path), chunk_size=self.cfg.chunk_size, resume=self.parts
        )
        _check_unchanged(path, size, mtime, stored=True)
        return sent

    async def _verify(self, key: str, size: int) -> None:
        meta = await self.s3.head(self.bucket, key)
        remote = int(meta.get("content-length", -1))
        if remote != size:
            raise VerificationError(f"verify_upload: {self.bucket}/{key} is {remote} bytes remote, {size} local")


_O_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def _read_exactly(path: str, size: int) -> bytes:
    """The whole file, which must still be ``size`` bytes (no extra stat).

    Reads up to ``size + 1`` bytes with ``os.read`` (a third of the cost of ``open().read()``
    for a 10 KB file): one byte more than expected means the file grew, fewer that it shrank.
    """
    try:
        fd = os.open(path, _O_READ)
    except FileNotFoundError:
        raise FileChangedError(path, size, None) from None
    try:
        data = os.read(fd, size + 1)
        while len(data) <= size:  # short read, or the end of the file
            more = os.read(fd, size + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) != size:
        raise FileChangedError(path, size, _size_now(path))
    return data


def _size_now(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _changed(path: str, size: int, mtime_ns: int, stored: bool = False) -> FileChangedError | None:
    """A ``FileChangedError`` when the file no longer has its scanned size and mtime (one stat)."""
    try:
        st = os.stat(path)
    except OSError:
        return FileChangedError(path, size, None, stored=stored)
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        return FileChangedError(path, size, st.st_size, stored=stored)
    return None


def _check_unchanged(path: str, size: int, mtime_ns: int, stored: bool = False) -> None:
    """Raise ``FileChangedError`` unless the file still has its scanned size and mtime (one
    stat): a streamed file rewritten in place while it is sent is never recorded done.
    ``stored``: checked after its bytes were stored."""
    changed = _changed(path, size, mtime_ns, stored)
    if changed is not None:
        raise changed


async def bulk_upload(cfg: BulkUploadConfig) -> TransferStats:
    """Upload ``cfg.source_dir`` (or ``cfg.entries``) to ``cfg.bucket``; return the run's stats.

    Resumable: rerun with the same tracker and it skips what is done. Raises only for the run
    as a whole (missing ``source_dir``, a failing listing); each file's failure is recorded in
    the tracker and passed to ``on_error``.
    """
    check_source_dir(cfg.source_dir)
    rec = Recorder.for_config(cfg)
    job = _Upload(cfg, rec)
    presigner: Presigner[UploadItem] = Presigner(
        job.s3,
        cfg.bucket,
        method="put_object",
        batch_size=cfg.presign_batch_size,
        wants_url=job.wants_url,
    )
    return await run_job("bulk.upload", cfg, rec, presigner, job.items(), job.handle, size_at=2)
