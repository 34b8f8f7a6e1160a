"""A bulk run in its own process, to be killed with SIGKILL by test_resume.py.

    python resume_child.py upload|download API BUCKET DIR TRACKER_DB USER PASSWORD

Prints the number of files done after each file, so the parent can kill it mid-run.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from rahcp_prefect.bulk import (
    BulkDownloadConfig,
    BulkUploadConfig,
    TransferStats,
    bulk_download,
    bulk_upload,
)
from rahcp_prefect.client import HCPClient
from rahcp_prefect.tracker import SqliteTracker

MIB = 1024 * 1024


def progress(stats: TransferStats) -> None:
    sys.stdout.write(f"{stats.ok}\n")
    sys.stdout.flush()


async def main(mode: str, api: str, bucket: str, folder: str, db: str, user: str, password: str) -> None:
    tracker = SqliteTracker(db, job="resume", flush_every=5)
    async with HCPClient(
        endpoint=api, username=user, password=password, multipart_threshold=6 * MIB, multipart_chunk=5 * MIB
    ) as client:
        common = dict(client=client, bucket=bucket, tracker=tracker, workers=4, on_progress=progress, progress_interval=0)
        if mode == "upload":
            await bulk_upload(BulkUploadConfig(source_dir=Path(folder), **common))
        else:
            await bulk_download(BulkDownloadConfig(dest_dir=Path(folder), stream_threshold=MIB, chunk_size=64 * 1024, **common))
    tracker.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
