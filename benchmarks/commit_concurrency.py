"""What ``commit_concurrency`` buys when HCP answers copies slowly.

    python -m benchmarks.commit_concurrency [--objects 500] [--delay 0.2] [--concurrency 32]

The commit is one server-side copy per staged object (the HCP API has no rename). Against the
in-process emulator, whose fault injection holds every copy ``--delay`` seconds (the latency of a
remote, busy HCP), ``commit_staging`` moves ``--objects`` objects with ``--concurrency`` copies
in flight; the reference is the default (``COPY_CONCURRENCY``). A second pair without the delay
shows what a higher setting costs when the server, not the latency, is the limit. Prints one
JSON line per pair with both times and ``ratio`` (ours / reference seconds: below 1 is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.s3 import COPY_CONCURRENCY
from rahcp_prefect.testing.emulator import HCPEmulator


async def timed_commit(emulator: HCPEmulator, bucket: str, objects: int, concurrency: int) -> float:
    for index in range(objects):
        emulator.s3.put_object(Bucket=bucket, Key=f"staging/{index:06d}", Body=b"x" * 100)
    async with HCPClient(endpoint=emulator.base_url, username="bench", password="bench") as client:
        started = time.perf_counter()
        moved = await client.s3.commit_staging(bucket, "staging/", "final/", concurrency)
        elapsed = time.perf_counter() - started
        await client.s3.cleanup_staging(bucket, "final/")
    if moved != objects:
        raise RuntimeError(f"moved {moved} of {objects}")
    return elapsed


async def main(objects: int, delay: float, concurrency: int) -> list[dict[str, Any]]:
    lines = []
    with HCPEmulator() as emulator:
        bucket = emulator.create_bucket("commit-concurrency")
        for copy_delay in (delay, 0.0):
            rule = emulator.faults.add("api", method="POST", path=r"/copy$", delay=copy_delay, count=None) if copy_delay else None
            ours = await timed_commit(emulator, bucket, objects, concurrency)
            reference = await timed_commit(emulator, bucket, objects, COPY_CONCURRENCY)
            if rule is not None:
                emulator.faults.remove(rule)
            lines.append({
                "scenario": "commit-slow-copies" if copy_delay else "commit-emulator-bound",
                "objects": objects,
                "copy_delay_s": copy_delay,
                "ours": {"concurrency": concurrency, "seconds": round(ours, 2), "copies_per_s": round(objects / ours, 1)},
                "reference": {"concurrency": COPY_CONCURRENCY, "seconds": round(reference, 2), "copies_per_s": round(objects / reference, 1)},
                "ratio": round(ours / reference, 3),
            })
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    for line in asyncio.run(main(args.objects, args.delay, args.concurrency)):
        print(json.dumps(line))
