"""Expired presigned URLs: S3 answers 403 "Request has expired" (the emulator enforces expiry
as real S3 does), the engine signs that key again and the file goes through.

The batch presign is wrapped to sign for one second and hand the URLs over only after they
expired, so every first attempt meets a genuinely expired URL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, bulk_download, bulk_upload
from rahcp_prefect.testing.counter import DATA_GET, DATA_PUT, PRESIGN
from rahcp_prefect.tracker import SqliteTracker

from .helpers import tree_hashes

FILES = 6


def _expire_batch_urls(client: Any) -> list[int]:
    """Make ``presign_bulk`` return URLs that expired before use; returns the batch sizes."""
    real = client.s3.presign_bulk
    batches: list[int] = []

    async def expired(bucket: str, keys: list[str], method: str = "get_object", expires: int = 3600) -> dict[str, str]:
        urls = await real(bucket, keys, method=method, expires=1)
        await asyncio.sleep(2.1)  # X-Amz-Date has whole seconds: 1 s of validity is over by now
        batches.append(len(urls))
        return urls

    client.s3.presign_bulk = expired
    return batches


async def test_expired_urls_are_presigned_again_upload_and_download(
    hcp_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for index in range(FILES):
        (source / f"f{index}.bin").write_bytes(b"%d" % index * (10 + index))
    batches = _expire_batch_urls(hcp_client)
    with SqliteTracker(tmp_path / "t.db", job="up") as tracker:
        up = await bulk_upload(BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=source, tracker=tracker))
    counts = hcp_emulator.request_counts
    assert batches == [FILES], "every URL of the batch was expired"
    assert (up.ok, up.errors, up.retries) == (FILES, 0, FILES)
    assert counts[PRESIGN] == FILES, "each key signed again, once"
    assert counts[DATA_PUT] == 2 * FILES

    hcp_emulator.reset_counts()
    with SqliteTracker(tmp_path / "t.db", job="down") as tracker:
        down = await bulk_download(
            BulkDownloadConfig(client=hcp_client, bucket=hcp_bucket, dest_dir=tmp_path / "dest", tracker=tracker)
        )
    counts = hcp_emulator.request_counts
    assert (down.ok, down.errors, down.retries) == (FILES, 0, FILES)
    assert counts[PRESIGN] == FILES
    assert counts[DATA_GET] == 2 * FILES
    assert tree_hashes(tmp_path / "dest") == tree_hashes(source)
