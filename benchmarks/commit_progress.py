"""What the commit's progress callback costs: ``commit_staging`` with and without ``on_progress``.

    python -m benchmarks.commit_progress [--objects 500] [--rounds 2]

The operator's view calls ``on_progress(objects, bytes)`` after every server-side copy of the
commit (the flows throttle what reaches the Prefect API). Here the callback does more than the
flows' (it formats the full progress line on every call, the worst case), against the same
commit with no callback (the floor), alternately on the in-process emulator. Prints one JSON
line: both medians and ``ratio`` (with / without callback seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from rahcp_prefect.client import HCPClient
from rahcp_prefect.report.format import progress_line
from rahcp_prefect.testing.emulator import HCPEmulator


async def timed_commit(emulator: HCPEmulator, bucket: str, objects: int, with_callback: bool) -> float:
    for index in range(objects):
        emulator.s3.put_object(Bucket=bucket, Key=f"staging/{index:06d}", Body=b"x" * 100)
    lines: list[str] = []
    started = time.perf_counter()

    def on_progress(moved: int, moved_bytes: int) -> None:
        lines.append(progress_line("commit", moved, objects, time.perf_counter() - started, bytes_done=moved_bytes))

    async with HCPClient(endpoint=emulator.base_url, username="bench", password="bench") as client:
        started = time.perf_counter()
        moved = await client.s3.commit_staging(
            bucket, "staging/", "final/", on_progress=on_progress if with_callback else None
        )
        elapsed = time.perf_counter() - started
        await client.s3.cleanup_staging(bucket, "final/")
    if moved != objects or (with_callback and len(lines) != objects):
        raise RuntimeError(f"moved {moved} of {objects}, {len(lines)} progress calls")
    return elapsed


async def main(objects: int, rounds: int) -> dict[str, Any]:
    ours: list[float] = []
    floor: list[float] = []
    with HCPEmulator() as emulator:
        bucket = emulator.create_bucket("commit-progress")
        for _ in range(rounds):
            floor.append(await timed_commit(emulator, bucket, objects, False))
            ours.append(await timed_commit(emulator, bucket, objects, True))
    return {
        "benchmark": "commit-progress-callback",
        "objects": objects,
        "ours": {"seconds": round(statistics.median(ours), 2), "all": [round(s, 2) for s in ours]},
        "reference": {"seconds": round(statistics.median(floor), 2), "all": [round(s, 2) for s in floor]},
        "ratio": round(statistics.median(ours) / statistics.median(floor), 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.objects, args.rounds))))
