"""The two bulk-transfer configurations, field for field as the SDK reference specifies them.

Plain dataclasses rather than pydantic models: they carry live objects (a client, a tracker,
callbacks) and are built once per run, so validation is a few checks in ``__post_init__``
(those of ``validation``, which the tasks and the flows make too).
Nothing here touches the filesystem or the network; ``bulk_upload`` checks ``source_dir``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rahcp_prefect import defaults
from rahcp_prefect.client.sizes import parse_size
from rahcp_prefect.tracker.protocol import TrackerProtocol

from .validation import InvalidInputError, check_bucket, check_count, check_prefix

if TYPE_CHECKING:
    from rahcp_prefect.client import HCPClient

    from .stats import TransferStats

ValidateFn = Callable[[Path], None | Awaitable[None] | Any]
"""``fn(path)``: raises when the file is not acceptable. Sync functions run in a thread."""
ProgressFn = Callable[["TransferStats"], Any]
ErrorFn = Callable[[str, BaseException], Any]
DownloadEntry = tuple[str, int] | tuple[str, int, str | None]
"""One object of a download work list: ``(key, size)``, or ``(key, size, etag)`` as listed."""


def _check_common(cfg: Any) -> None:
    cfg.chunk_size = parse_size(cfg.chunk_size, "chunk_size")
    check_bucket(cfg.bucket)
    check_prefix(cfg.prefix)
    for name in ("workers", "max_workers", "queue_depth", "presign_batch_size", "chunk_size"):
        check_count(name, getattr(cfg, name))
    if not cfg.progress_interval >= 0:
        raise InvalidInputError(f"progress_interval must be >= 0, got {cfg.progress_interval!r}")
    if isinstance(cfg.include, str) or isinstance(cfg.exclude, str):
        raise TypeError("include and exclude are lists of glob patterns, not strings")
    cfg.include = list(cfg.include)
    cfg.exclude = list(cfg.exclude)


@dataclass
class BulkUploadConfig:
    """Upload every file under ``source_dir`` to ``bucket`` as ``prefix + relative/path``."""

    client: HCPClient
    bucket: str
    source_dir: Path
    tracker: TrackerProtocol
    prefix: str = ""
    workers: int = defaults.WORKERS
    """Files in flight at the start: the adaptive window's first size."""
    max_workers: int = defaults.MAX_WORKERS
    """The most files in flight the window grows to while throughput rises with it; at or
    below ``workers`` the window stays at ``workers`` (cut only while the store throttles)."""
    queue_depth: int = defaults.QUEUE_DEPTH
    presign_batch_size: int = defaults.PRESIGN_BATCH_SIZE
    chunk_size: int = defaults.CHUNK_SIZE
    """Bytes per streaming step (an int, or text such as ``"1 MiB"``)."""
    skip_existing: bool = True
    """List the prefix (one list call per page, read in step with the scan): a file the tracker
    has no record of is skipped (and recorded done) when the listing holds its key with the
    same size; a recorded unchanged file the listing no longer holds is sent again."""
    retry_errors: bool = False
    """Only process the keys the tracker holds as errors (re-stat'ed; wins over ``entries``)."""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    validate_file: ValidateFn | None = None
    """Called with the local path before upload; raising marks the file as error."""
    verify_upload: bool = False
    """HEAD each object after upload and compare its size."""
    on_progress: ProgressFn | None = None
    on_error: ErrorFn | None = None
    progress_interval: float = defaults.PROGRESS_INTERVAL
    follow_symlinks: bool = False
    """Follow symlinks to files and directories (loops are detected and skipped)."""
    entries: Iterable[tuple[str, int]] | None = None
    """Explicit work list of ``(relative path with / separators, size)``: no scan of the tree."""
    skip_done: bool = True
    """Skip files the tracker holds as done with the same size and mtime_ns; a file changed
    since it was sent is sent again (records read in key order, a page at a time). Callers
    that decided the work list already (claims, the flow's sync plan) turn it off."""

    def __post_init__(self) -> None:
        _check_common(self)
        self.source_dir = Path(self.source_dir)


@dataclass
class BulkDownloadConfig:
    """Download every object under ``prefix`` in ``bucket`` into ``dest_dir`` (prefix stripped)."""

    client: HCPClient
    bucket: str
    dest_dir: Path
    tracker: TrackerProtocol
    prefix: str = ""
    workers: int = defaults.WORKERS
    """Files in flight at the start: the adaptive window's first size."""
    max_workers: int = defaults.MAX_WORKERS
    """The most files in flight the window grows to while throughput rises with it; at or
    below ``workers`` the window stays at ``workers`` (cut only while the store throttles)."""
    queue_depth: int = defaults.QUEUE_DEPTH
    presign_batch_size: int = defaults.PRESIGN_BATCH_SIZE
    chunk_size: int = defaults.CHUNK_SIZE
    stream_threshold: int = defaults.STREAM_THRESHOLD
    """Bytes (or text such as ``"100 MiB"``): objects below this size are fetched in one shot,
    larger ones streamed in ``chunk_size``."""
    retry_errors: bool = False
    """Only process the keys the tracker holds as errors (wins over ``entries``)."""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    validate_file: ValidateFn | None = None
    """Called with the downloaded file (still under its temporary name, same suffix) before it
    is renamed into place; raising removes it and marks the key as error."""
    verify_download: bool = False
    """Check the size of each file after transfer against the listed size."""
    on_progress: ProgressFn | None = None
    on_error: ErrorFn | None = None
    progress_interval: float = defaults.PROGRESS_INTERVAL
    entries: Iterable[DownloadEntry] | None = None
    """Explicit work list of ``(key, size)`` or ``(key, size, etag)``: no listing of the prefix.
    With the listed ETag a single-part object is checked against its MD5 when no manifest line
    names it, and a large one needs no HEAD before its ranged GETs."""
    skip_done: bool = True
    """Skip files on disk as the job wrote them (the size and mtime_ns the tracker recorded)
    without marking them again; a file changed on disk since is fetched again. Without it (or
    with no record), a file on disk with the listed size is skipped and recorded done."""
    verify_checksums: bool = True
    """Hash each file as it streams and check it against ``manifest`` (SHA-256), else against
    the ETag's MD5 for single-part objects; multipart objects without a manifest entry count
    as unverified. A mismatch is fetched once more, then a file error; the damaged bytes never
    land under the final name."""
    manifest: Mapping[str, str] | None = None
    """SHA-256 (hex) by key, e.g. read from the prefix's ``manifest-sha256.txt``."""
    mtimes: Mapping[str, int] | None = None
    """Modification times (ns) by key to give the files written, e.g. read from the prefix's
    ``rahcp-mtimes.txt``; a key without one keeps the time it was written."""

    def __post_init__(self) -> None:
        _check_common(self)
        self.stream_threshold = parse_size(self.stream_threshold, "stream_threshold")
        if self.stream_threshold < 0:
            raise InvalidInputError(f"stream_threshold must be >= 0, got {self.stream_threshold}")
        self.dest_dir = Path(self.dest_dir)
