"""What sharing a job costs: 1, 2 and 4 cooperating runs over 5,000 small files.

    python -m benchmarks.cooperative [--files 5000] [--runs 1,2,4] [--dsn postgresql://...]

The emulator (API + moto S3) runs in its own process. The reference is the single-run engine
(``bulk_upload`` walking the tree, PostgreSQL tracker, no claims), measured in the same run.
Each cooperative scenario starts N processes on one job; each registers the manifest and
drains it with ``rahcp_prefect.job.claims.drain_job`` (claims of ``--batch`` keys, leases
renewed while a batch runs), uploading every batch with the engine. A timing proxy around the
tracker adds up the seconds spent in the claim machinery (register, claim, renew, summary).

Prints one JSON object per scenario: wall seconds, files/s, claim seconds per file, and
``ratio`` = claim overhead per file / the single-run engine's seconds per file (bar < 0.10).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.transfer import Emulator

USER = "bench"
PASSWORD = "bench-password"
CLAIM_CALLS = ("register", "claim", "renew", "summary", "release")


class TimedTracker:
    """Delegates to a tracker, adding up the time spent in the claim machinery."""

    def __init__(self, tracker: Any) -> None:
        self._tracker = tracker
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._tracker, name)
        if name not in CLAIM_CALLS:
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def make_files(root: Path, count: int, size: int) -> list[tuple[str, int]]:
    payload = os.urandom(size)
    entries = []
    for index in range(count):
        rel = f"d{index % 25:02d}/f{index:06d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        entries.append((rel, size))
    return entries


async def _single(api: str, bucket: str, source: Path, dsn: str, job: str) -> float:
    from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload
    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.tracker import create_tracker

    tracker = create_tracker(dsn, job=job)
    try:
        async with HCPClient(endpoint=api, username=USER, password=PASSWORD) as client:
            started = time.perf_counter()
            stats = await bulk_upload(BulkUploadConfig(client=client, bucket=bucket, source_dir=source, tracker=tracker))
            elapsed = time.perf_counter() - started
        if stats.ok != stats.done:
            raise RuntimeError(f"single run failed: {stats}")
        return elapsed
    finally:
        tracker.delete_job()
        tracker.close()


async def _cooperate(api: str, bucket: str, source: str, dsn: str, job: str, entries: list[Any], batch: int) -> dict[str, Any]:
    from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload
    from rahcp_prefect.job.claims import drain_job, register_manifest
    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.tracker import create_tracker

    owner = uuid.uuid4().hex
    tracker = create_tracker(dsn, job=job)
    timed = TimedTracker(tracker)
    try:
        async with HCPClient(endpoint=api, username=USER, password=PASSWORD) as client:
            started = time.perf_counter()
            register_manifest(timed, ((rel, size) for rel, size in entries))  # type: ignore[arg-type]

            async def run_batch(claimed: list[tuple[str, int]]) -> dict[str, Any]:
                stats = await bulk_upload(
                    BulkUploadConfig(
                        client=client, bucket=bucket, source_dir=Path(source), tracker=tracker,
                        entries=claimed, skip_done=False, skip_existing=False,
                    )
                )
                return {"ok": stats.ok, "errors": stats.errors, "done": stats.done}

            totals = await drain_job(timed, owner, run_batch, batch_size=batch, lease_seconds=60, poll_seconds=0.2)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - started
        return {"ok": totals.get("ok", 0), "errors": totals.get("errors", 0), "seconds": elapsed, "claim_seconds": timed.seconds}
    finally:
        tracker.close()


def _child(args: tuple[Any, ...], queue: Any) -> None:
    queue.put(asyncio.run(_cooperate(*args)))


def cooperative(api: str, bucket: str, source: Path, dsn: str, entries: list[Any], runs: int, batch: int) -> dict[str, Any]:
    job = f"bench-coop-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    started = time.perf_counter()
    processes = [
        context.Process(target=_child, args=((api, bucket, str(source), dsn, job, entries, batch), queue))
        for _ in range(runs)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    wall = time.perf_counter() - started
    from rahcp_prefect.tracker import create_tracker

    with create_tracker(dsn, job=job) as tracker:  # type: ignore[attr-defined]
        summary = tracker.summary()
        tracker.delete_job()
    return {"wall": wall, "results": results, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", default="1,2,4")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--dsn", default=os.environ.get("RAHCP_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rahcp-coop-bench-") as tmp, Emulator() as emulator:
        source = Path(tmp) / "src"
        entries = make_files(source, args.files, args.size)
        single_s = asyncio.run(_single(emulator.api, emulator.bucket("single"), source, args.dsn, f"bench-single-{uuid.uuid4().hex[:8]}"))
        per_file = single_s / args.files
        for runs in (int(value) for value in args.runs.split(",")):
            outcome = cooperative(emulator.api, emulator.bucket(f"coop{runs}"), source, args.dsn, entries, runs, args.batch)
            claim_s = sum(result["claim_seconds"] for result in outcome["results"])
            sent = sum(result["ok"] for result in outcome["results"])
            print(json.dumps({
                "scenario": f"cooperative-{runs}-runs-{args.files}",
                "runs": runs,
                "wall_seconds": round(outcome["wall"], 2),
                "files_per_s": round(args.files / outcome["wall"], 1),
                "files_sent": sent,
                "tracker_summary": outcome["summary"],
                "claim_seconds_total": round(claim_s, 3),
                "claim_ms_per_file": round(claim_s / args.files * 1000, 4),
                "single_engine_seconds": round(single_s, 2),
                "single_engine_ms_per_file": round(per_file * 1000, 3),
                "ratio": round(claim_s / args.files / per_file, 4),
                "bars": {"claim_overhead<10%": claim_s / args.files / per_file < 0.10, "every_file_once": sent == args.files},
            }), flush=True)


if __name__ == "__main__":
    main()
