"""Does asking for the next listing page ahead pay when listing is slow?

    python -m benchmarks.listing_ahead [--objects 4000] [--delay 2.0] [--repeat 3]

A bulk download of ``--objects`` small objects from the in-process emulator, whose fault
injection holds every list call ``--delay`` seconds (a large HCP namespace can list that
slowly). Ours is the SDK's ``iter_objects`` (next page asked for half-way through a page); the
reference is the same engine with a listing that asks for a page only when the previous one is
used up. Runs alternate; prints one JSON line with both medians and ``ratio`` (ours / reference
seconds: below 1 is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rahcp_prefect.bulk import BulkDownloadConfig, bulk_download
from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.s3 import S3Ops
from rahcp_prefect.testing.emulator import HCPEmulator
from rahcp_prefect.tracker import create_tracker

AHEAD = S3Ops.iter_objects


async def page_when_used_up(
    self: S3Ops, bucket: str, prefix: str = "", page_size: int = 1000
) -> AsyncIterator[dict[str, Any]]:
    """The reference: the next page is asked for only once this one is used up."""
    token: str | None = None
    while True:
        page = await self.list_objects(bucket, prefix, max_keys=page_size, continuation_token=token)
        for item in page.get("objects", []):
            yield item
        token = page.get("next_continuation_token")
        if not page.get("is_truncated") or not token:
            return


async def one_run(emulator: HCPEmulator, bucket: str, objects: int, listing: Any) -> float:
    S3Ops.iter_objects = listing  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="listing-ahead-"))
    tracker = create_tracker(work / "tracker.db", job="listing-ahead")
    try:
        async with HCPClient(endpoint=emulator.base_url, username="bench", password="bench") as client:
            started = time.perf_counter()
            stats = await bulk_download(
                BulkDownloadConfig(client=client, bucket=bucket, dest_dir=work / "out", tracker=tracker, workers=10)
            )
            elapsed = time.perf_counter() - started
    finally:
        S3Ops.iter_objects = AHEAD  # type: ignore[method-assign]
        tracker.close()
        shutil.rmtree(work)
    if stats.ok != objects:
        raise RuntimeError(f"download incomplete: {stats}")
    return elapsed


async def main(objects: int, delay: float, repeat: int) -> dict[str, Any]:
    with HCPEmulator() as emulator:
        bucket = emulator.create_bucket("listing-ahead")
        for index in range(objects):
            emulator.s3.put_object(Bucket=bucket, Key=f"k/{index:06d}", Body=b"x" * 100)
        emulator.faults.add("api", method="GET", path=r"/objects$", delay=delay, count=None)
        runs: dict[str, list[float]] = {"ours": [], "reference": []}
        for _ in range(repeat):
            runs["ours"].append(round(await one_run(emulator, bucket, objects, AHEAD), 2))
            runs["reference"].append(round(await one_run(emulator, bucket, objects, page_when_used_up), 2))
    ours, reference = statistics.median(runs["ours"]), statistics.median(runs["reference"])
    return {
        "scenario": "listing-ahead",
        "objects": objects,
        "list_delay_s": delay,
        "ours_s": ours,
        "reference_s": reference,
        "ratio": round(ours / reference, 3),
        "runs": runs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.objects, args.delay, args.repeat))))
