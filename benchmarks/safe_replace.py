"""What a safe replace costs per changed file, against a plain copy over.

    python -m benchmarks.safe_replace [--objects 200] [--delay 0.02]

A namespace without versioning and with the overwrite option off (HCP's default) refuses a
copy onto an existing object (409), so the commit replaces each changed file by a safe replace:
the refused copy, a delete, the copy (three API requests instead of one; the final check's
listing checks the ETags). On the HCP-faithful emulator the commit (``job.commit.move_staged``) of ``--objects``
changed files whose old versions are in the final prefix runs in a namespace with the overwrite
option on (ours: the reference, one copy each) and in one with it off (the safe replace), first
as fast as the emulator answers, then with ``--delay`` seconds held on every API request (a
remote HCP's latency). Prints one JSON line per pair with both times and ``ratio`` (safe
replace / copy over seconds), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.commit import move_staged
from rahcp_prefect.job.staging import StagingPlan
from rahcp_prefect.testing.emulator import HCPEmulator

STAGING, FINAL = ".rahcp-staging/bench/", "final/"


async def timed_commit(emulator: HCPEmulator, bucket: str, objects: int) -> tuple[float, dict[str, Any]]:
    """Seconds to commit ``objects`` changed files onto their old versions in ``bucket``."""
    for index in range(objects):
        emulator.s3.put_object(Bucket=bucket, Key=f"{FINAL}{index:06d}", Body=b"old" * 30)
        emulator.s3.put_object(Bucket=bucket, Key=f"{STAGING}{index:06d}", Body=b"new" * 40)
    plan = StagingPlan(bucket, STAGING, FINAL, resumed=True)
    async with HCPClient(endpoint=emulator.base_url, username="bench", password="bench") as client:
        started = time.perf_counter()
        moves = await move_staged(client, plan, 8)
        elapsed = time.perf_counter() - started
    if moves["moved"] != objects or emulator.stored(bucket, STAGING):
        raise RuntimeError(f"committed {moves} of {objects}")
    return elapsed, moves


async def main(objects: int, delay: float) -> list[dict[str, Any]]:
    lines = []
    with HCPEmulator() as emulator:
        emulator.mode = "hcp"
        over = emulator.create_bucket("bench-copy-over")
        safe = emulator.create_bucket("bench-safe-replace")
        emulator.configure_namespace(over, overwrite=True)
        emulator.configure_namespace(safe, overwrite=False, versioning=False)
        for bucket in (over, safe):  # warm up: logins, connections, the emulator's first requests
            await timed_commit(emulator, bucket, 5)
        for request_delay in (0.0, delay):
            rule = emulator.faults.add("api", delay=request_delay, count=None) if request_delay else None
            reference, _ = await timed_commit(emulator, over, objects)
            ours, moves = await timed_commit(emulator, safe, objects)
            if rule is not None:
                emulator.faults.remove(rule)
            if moves["replaced"] != objects:
                raise RuntimeError(f"expected {objects} safe replaces, got {moves}")
            lines.append({
                "scenario": "safe-replace-latency" if request_delay else "safe-replace-emulator-bound",
                "changed_files": objects,
                "api_delay_s": request_delay,
                "ours": {"what": "safe replace (409, delete, copy)", "seconds": round(ours, 3),
                         "ms_per_file": round(1000 * ours / objects, 2)},
                "reference": {"what": "copy over (overwrite on)", "seconds": round(reference, 3),
                              "ms_per_file": round(1000 * reference / objects, 2)},
                "ratio": round(ours / reference, 2),
            })
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()
    for line in asyncio.run(main(args.objects, args.delay)):
        print(json.dumps(line))
