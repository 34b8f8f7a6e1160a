"""What the Prefect layer costs: the bulk-upload flow against the engine alone, same files.

    python -m benchmarks.flow_overhead [--files 10000] [--size 1024]

The emulator (API + moto S3) runs in its own process. Both runs upload the same tree into an
empty bucket with the same settings; the engine run calls ``bulk_upload(BulkUploadConfig)``
directly with a SQLite tracker, the flow run goes through a temporary Prefect server
(``prefect_test_harness``), blocks, batch tasks, artifacts, staging verification and the
commit (a server-side copy per object, which the engine alone does not do).

Prints one JSON object: the engine's seconds, the flow's seconds split into the upload phase
and the commit, the number of task runs, and the bars of the issue: at most 50 task runs, flow
wall time at most the engine's plus 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.transfer import Emulator

USER = "bench"
PASSWORD = "bench-password"


def make_files(root: Path, count: int, size: int) -> None:
    payload = os.urandom(size)
    for index in range(count):
        path = root / f"d{index % 50:02d}" / f"f{index:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)


async def engine_alone(api: str, bucket: str, source: Path, db: Path, workers: int) -> float:
    from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload
    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.tracker import create_tracker

    tracker = create_tracker(db, job="engine-alone")
    async with HCPClient(endpoint=api, username=USER, password=PASSWORD) as client:
        started = time.perf_counter()
        stats = await bulk_upload(
            BulkUploadConfig(client=client, bucket=bucket, source_dir=source, tracker=tracker, workers=workers)
        )
        elapsed = time.perf_counter() - started
    tracker.close()
    if stats.errors or stats.ok == 0:
        raise RuntimeError(f"engine run failed: {stats}")
    return elapsed


async def timed_flow_upload(
    api: str, bucket: str, source: Path, db: Path, workers: int, prefix: str
) -> tuple[float, Any, dict[str, Any]]:
    """One ``bulk-upload`` flow run with the bench blocks (saved again, same names):
    ``(seconds, final state, result)``; a failed run raises."""
    from pydantic import SecretStr

    from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
    from rahcp_prefect.flows import bulk_upload

    await HCPCredentials(endpoint=api, username=USER, password=SecretStr(PASSWORD)).save("bench", overwrite=True)
    await HCPTransferSettings(workers=workers).save("bench-settings", overwrite=True)
    await HCPTracker(sqlite_path=str(db)).save("bench-tracker", overwrite=True)
    started = time.perf_counter()
    state = await bulk_upload(
        source_dir=str(source),
        bucket=bucket,
        prefix=prefix,
        credentials_block="bench",
        settings_block="bench-settings",
        tracker_block="bench-tracker",
        return_state=True,
    )
    elapsed = time.perf_counter() - started
    if not state.is_completed():
        raise RuntimeError(f"flow run failed: {state}")
    return elapsed, state, await state.result()


def flow_bench_args(description: str) -> argparse.ArgumentParser:
    """The options the flow benchmarks share (files, size, workers), and a quiet Prefect."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=10)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    return parser


async def through_flow(api: str, bucket: str, source: Path, db: Path, workers: int) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    elapsed, state, result = await timed_flow_upload(api, bucket, source, db, workers, "flow/")
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
        commit = [r for r in runs if r.name.startswith("hcp-commit-staging")]
    commit_seconds = sum((r.total_run_time.total_seconds() for r in commit), 0.0)
    return {"seconds": elapsed, "commit_seconds": commit_seconds, "task_runs": len(runs), "result": result}


def main() -> None:
    args = flow_bench_args(__doc__.splitlines()[0]).parse_args()
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="rahcp-flow-bench-") as tmp, Emulator() as emulator:
        work = Path(tmp)
        make_files(work / "src", args.files, args.size)
        engine_bucket = emulator.bucket("engine")
        engine_s = asyncio.run(engine_alone(emulator.api, engine_bucket, work / "src", work / "engine.db", args.workers))
        flow_bucket = emulator.bucket("flow")
        with prefect_test_harness(server_startup_timeout=120):
            flow = asyncio.run(through_flow(emulator.api, flow_bucket, work / "src", work / "flow.db", args.workers))
    upload_phase = flow["seconds"] - flow["commit_seconds"]
    print(
        json.dumps(
            {
                "scenario": f"flow-upload-{args.files}",
                "engine_seconds": round(engine_s, 2),
                "flow_seconds": round(flow["seconds"], 2),
                "flow_commit_seconds": round(flow["commit_seconds"], 2),
                "flow_without_commit_seconds": round(upload_phase, 2),
                "task_runs": flow["task_runs"],
                "ratio": round(flow["seconds"] / engine_s, 3),
                "bars": {
                    "task_runs<=50": flow["task_runs"] <= 50,
                    "flow<=engine+10s": flow["seconds"] <= engine_s + 10,
                    "flow_without_commit<=engine+10s": upload_phase <= engine_s + 10,
                },
                "files_committed": flow["result"].get("committed"),
            }
        )
    )


if __name__ == "__main__":
    main()
