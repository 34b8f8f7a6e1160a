"""One multipart upload in its own process, to be killed with SIGKILL by test_part_resume.py.

    python parts_child.py API BUCKET KEY FILE TRACKER_DB USER PASSWORD before|after

Sends the parts one at a time and records them in the tracker. Once the server has answered
for part 3 it prints ``3`` and blocks its event loop (so part 4 never leaves), ``before``
recording that part (its record is lost with the process) or ``after``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from rahcp_prefect.client import HCPClient
from rahcp_prefect.tracker import SqliteTracker

MIB = 1024 * 1024
HOLD_AT = 3


async def main(api: str, bucket: str, key: str, path: str, db: str, user: str, password: str, when: str) -> None:
    tracker = SqliteTracker(db, job="parts")
    real = tracker.record_part

    def record_part(*args: Any) -> None:
        if args[3] == HOLD_AT and when == "before":
            print(HOLD_AT, flush=True)
            time.sleep(600)  # the record of part 3 never lands: killed here
        real(*args)
        if args[3] == HOLD_AT:
            print(HOLD_AT, flush=True)
            time.sleep(600)

    tracker.record_part = record_part  # type: ignore[method-assign]
    async with HCPClient(endpoint=api, username=user, password=password, multipart_chunk=5 * MIB) as client:
        await client.s3.upload_multipart(bucket, key, Path(path), concurrency=1, resume=tracker)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:9]))
