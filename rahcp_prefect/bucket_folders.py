"""``HCPBucket``'s folder transfers: a local folder to or from a key prefix in one bucket.

A folder goes through the bulk engine (``rahcp_prefect.bulk``: presigned in batches, ``workers``
transfers in flight), never one request per file in a loop, with a throw-away SQLite tracker: a
folder copy is one shot, not a resumable job. The files' modification times travel beside them
(``job.mtimes``), so a folder uploaded here and downloaded again keeps its times.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, TransferStats
from rahcp_prefect.bulk import bulk_download as run_bulk_download
from rahcp_prefect.bulk import bulk_upload as run_bulk_upload
from rahcp_prefect.client import HCPClient
from rahcp_prefect.errors import RahcpError
from rahcp_prefect.job.mtimes import add_mtimes, plan_mtimes, read_mtimes
from rahcp_prefect.job.records import read_fixity
from rahcp_prefect.setting_blocks import HCPTransferSettings
from rahcp_prefect.tracker import create_tracker
from rahcp_prefect.tracker.protocol import TrackerProtocol

ClientOpener = Callable[[], AbstractAsyncContextManager[HCPClient]]
"""Opens the block's client for one transfer (``HCPBucket._client``: its last login reused)."""


class FolderTransferError(RahcpError, RuntimeError):
    """Some files of a folder upload or download failed (the others were transferred)."""


async def upload_folder(
    open_client: ClientOpener, bucket: str, settings: HCPTransferSettings,
    source: Path, prefix: str, ignore_patterns: list[str] | None,
) -> TransferStats:
    """One bulk-engine run of ``source`` to ``prefix`` in ``bucket``, minus what the
    gitignore-style ``ignore_patterns`` match; raises if any file failed."""
    from rahcp_prefect.bulk.upload import check_source_dir

    check_source_dir(source)
    entries = _kept_files(source, ignore_patterns) if ignore_patterns is not None else None
    options = settings.engine_options("upload")

    def config(client: HCPClient, tracker: TrackerProtocol) -> BulkUploadConfig:
        return BulkUploadConfig(
            client=client, bucket=bucket, source_dir=source, tracker=tracker,
            prefix=prefix, skip_existing=False, entries=entries, **options,
        )

    async def keep_times(client: HCPClient, tracker: TrackerProtocol) -> None:
        # the files' times, beside them in the bucket: a folder download restores them
        await add_mtimes(client, bucket, prefix, plan_mtimes(tracker.iter_done(prefix), prefix))

    return await _run_engine(
        open_client, f"upload {source} to {bucket}/{prefix}", config, run_bulk_upload, finish=keep_times
    )


async def download_folder(
    open_client: ClientOpener, bucket: str, settings: HCPTransferSettings, prefix: str, dest: Path
) -> TransferStats:
    """One bulk-engine run of ``prefix`` in ``bucket`` into ``dest``, the files' times restored;
    raises if any object failed."""
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"not a directory: {dest}")
    options = settings.engine_options("download")

    times: dict[str, int] | None = None

    def config(client: HCPClient, tracker: TrackerProtocol) -> BulkDownloadConfig:
        return BulkDownloadConfig(
            client=client, bucket=bucket, dest_dir=dest, tracker=tracker, prefix=prefix,
            mtimes=times, **options,
        )

    async def read_times(client: HCPClient) -> None:
        nonlocal times
        fixity = await read_fixity(client, bucket, prefix)
        # a folder put_directory wrote has its times alone (no manifest, no record)
        times = fixity.mtimes if fixity.found else await read_mtimes(client, bucket, prefix)

    return await _run_engine(
        open_client, f"download {bucket}/{prefix} to {dest}", config, run_bulk_download, prepare=read_times
    )


async def _run_engine(
    open_client: ClientOpener,
    what: str,
    make_config: Callable[[HCPClient, TrackerProtocol], Any],
    run: Callable[[Any], Awaitable[TransferStats]],
    prepare: Callable[[HCPClient], Awaitable[None]] | None = None,
    finish: Callable[[HCPClient, TrackerProtocol], Awaitable[None]] | None = None,
) -> TransferStats:
    """Run the engine with a throw-away SQLite tracker; any failed file raises
    ``FolderTransferError`` naming the first ones. ``prepare`` runs before the engine, ``finish``
    after it when every file went through."""
    with tempfile.TemporaryDirectory(prefix="rahcp-bucket-") as scratch:
        tracker = create_tracker(Path(scratch) / "tracker.db", job=what)
        try:
            async with open_client() as client:
                if prepare is not None:
                    await prepare(client)
                stats = await run(make_config(client, tracker))
                if finish is not None and not stats.errors:
                    tracker.flush()
                    await finish(client, tracker)
            if stats.errors:
                from rahcp_prefect.job.run import first_errors

                raise FolderTransferError(
                    f"{what}: {stats.errors} file(s) failed ({first_errors(tracker.error_details())})"
                )
        finally:
            tracker.close()
    return stats


def _kept_files(source: Path, ignore_patterns: list[str]) -> list[tuple[str, int]]:
    """``(relative posix path, size)`` of the files under ``source`` no pattern ignores."""
    from prefect.utilities.filesystem import filter_files

    kept = filter_files(str(source), ignore_patterns, include_dirs=False, as_posix=True)
    entries = []
    for rel in sorted(kept):
        path = source / rel
        if path.is_file():
            entries.append((rel, path.stat().st_size))
    return entries
