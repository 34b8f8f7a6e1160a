"""The two bulk-transfer configurations, field for field as the SDK reference specifies them.

Plain dataclasses rather than pydantic models: they carry live objects (a client, a tracker,
callbacks) and are built once per run. Their engine settings (``workers``, ``chunk_size``...) are
``EngineSettings``' fields: the default, the bound and the description of each live there, and
``__post_init__`` validates them through that model, so a value the ``HCPTransferSettings`` block
refuses is refused here too, with the same field named. ``engine_options`` hands a block's values
to a config. Nothing here touches the filesystem or the network; ``bulk_upload`` checks
``source_dir``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from rahcp_prefect.client.sizes import parse_size
from rahcp_prefect.tracker.protocol import TrackerProtocol

from .settings import EngineSettings
from .validation import InvalidInputError, check_bucket, check_overrides, check_prefix, describe_errors

if TYPE_CHECKING:
    from rahcp_prefect.client import HCPClient

    from .stats import TransferStats

ValidateFn = Callable[[Path], None | Awaitable[None] | Any]
"""``fn(path)``: raises when the file is not acceptable. Sync functions run in a thread."""
ProgressFn = Callable[["TransferStats"], Any]
ErrorFn = Callable[[str, BaseException], Any]
DownloadEntry = tuple[str, int] | tuple[str, int, str | None]
"""One object of a download work list: ``(key, size)``, or ``(key, size, etag)`` as listed."""


def _default(name: str) -> Any:
    """The default of the engine setting ``name``, as ``EngineSettings`` declares it."""
    return EngineSettings.model_fields[name].default


def _check_engine_settings(cfg: Any) -> None:
    """Validate ``cfg``'s engine settings through ``EngineSettings`` (its types, bounds and size
    parsing) and keep the validated values; a bad one raises ``InvalidInputError`` (``SizeError``
    for a size that does not parse) naming the config and the field."""
    where = type(cfg).__name__
    names = [item.name for item in fields(cfg) if item.name in EngineSettings.model_fields]
    for name in names:  # sizes first: "256 KiB" is fine, "big" is named as the size it is not
        if "minimum_bytes" in (EngineSettings.model_fields[name].json_schema_extra or {}):  # type: ignore[operator]
            setattr(cfg, name, parse_size(getattr(cfg, name), name))
    values = check_overrides({name: getattr(cfg, name) for name in names}, EngineSettings.model_fields, where)
    try:
        checked = EngineSettings.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(describe_errors(exc.errors(), where)) from None
    for name in names:
        setattr(cfg, name, getattr(checked, name))


def _check_common(cfg: Any) -> None:
    check_bucket(cfg.bucket)
    check_prefix(cfg.prefix)
    _check_engine_settings(cfg)
    if isinstance(cfg.include, str) or isinstance(cfg.exclude, str):
        raise TypeError("include and exclude are lists of glob patterns, not strings")
    cfg.include = list(cfg.include)
    cfg.exclude = list(cfg.exclude)


@dataclass(kw_only=True)
class _EngineFields:
    """The engine settings both directions take; each is an ``EngineSettings`` field (its
    default, bound and description are declared there, once). Keyword-only."""

    workers: int = _default("workers")
    max_workers: int = _default("max_workers")
    queue_depth: int = _default("queue_depth")
    presign_batch_size: int = _default("presign_batch_size")
    chunk_size: int = _default("chunk_size")
    """An int, or text such as ``"1 MiB"``."""
    progress_interval: float = _default("progress_interval")


@dataclass
class BulkUploadConfig(_EngineFields):
    """Upload every file under ``source_dir`` to ``bucket`` as ``prefix + relative/path``; the
    engine settings (``workers``... ``verify_upload``) are ``EngineSettings``'."""

    client: HCPClient
    bucket: str
    source_dir: Path
    tracker: TrackerProtocol
    prefix: str = ""
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
    verify_upload: bool = _default("verify_upload")
    on_progress: ProgressFn | None = None
    on_error: ErrorFn | None = None
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
class BulkDownloadConfig(_EngineFields):
    """Download every object under ``prefix`` in ``bucket`` into ``dest_dir`` (prefix stripped);
    the engine settings (``workers``... ``verify_download``) are ``EngineSettings``'."""

    client: HCPClient
    bucket: str
    dest_dir: Path
    tracker: TrackerProtocol
    prefix: str = ""
    stream_threshold: int = _default("stream_threshold")
    """Bytes (or text such as ``"100 MiB"``): objects below this size are fetched in one shot,
    larger ones streamed in ``chunk_size``."""
    retry_errors: bool = False
    """Only process the keys the tracker holds as errors (wins over ``entries``)."""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    validate_file: ValidateFn | None = None
    """Called with the downloaded file (still under its temporary name, same suffix) before it
    is renamed into place; raising removes it and marks the key as error."""
    verify_download: bool = _default("verify_download")
    on_progress: ProgressFn | None = None
    on_error: ErrorFn | None = None
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
        self.dest_dir = Path(self.dest_dir)


ENGINE_CONFIGS = {"upload": BulkUploadConfig, "download": BulkDownloadConfig}


def engine_options(settings: EngineSettings, direction: str) -> dict[str, Any]:
    """The ``BulkUploadConfig``/``BulkDownloadConfig`` keyword arguments ``settings`` decide
    for ``direction`` (``upload`` or ``download``): every engine setting the config has."""
    config = ENGINE_CONFIGS.get(direction)
    if config is None:
        raise ValueError(f"direction must be 'upload' or 'download', not {direction!r}")
    names = {item.name for item in fields(config)} & set(EngineSettings.model_fields)
    return {name: getattr(settings, name) for name in sorted(names)}
