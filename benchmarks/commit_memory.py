"""What the commit's phases after the moves hold in memory as the job grows (issues 27 and 28).

    python -m benchmarks.commit_memory --files 10000,100000,300000,1000000

For each N, in a fresh child process: a SQLite tracker holding the N files as done with their
digests and times, as after a commit's moves, and the emulator (metadata-only store, HCP's
default rules) in a process of its own, its final prefix seeded with the N objects straight
into the store (so its memory, and the tag files it keeps, are not counted as ours). Then, timed
and with RSS sampled every 20 ms:

- ``final_check``: ``check_final`` (the final listing merged with the tracker's records);
- ``record``: ``recording.record_commit`` on the first night (a full record of N lines and the
  root manifest and times, written from disk and read back);
- ``quiet``: ``record_commit`` again, nothing changed (the records read back and merged: no
  write);
- ``reference``: what the commit did before it streamed, in the same process afterwards: the
  tracker's ``done_digests()`` as a dict, the manifest's and times' dicts, both rendered whole.

Each line of JSON gives, per phase, the seconds and the growth of the peak RSS above the RSS
before the phase (the tracker's N records are in place before any phase, so only what the phase
holds counts), in MB (10^6 bytes) and in KB per file, and the CPU per file of the ours phases.
A last line gives the growth per file from the smallest to the largest N, ours and the
reference's (the ratio is the saving).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

BUCKET = "bench"
FINAL = "archive/"
PAGE = 5000


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class Peak:
    """The largest RSS sampled every 20 ms while ``measure`` runs, above the RSS at its start."""

    def __init__(self) -> None:
        self.growth: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        gc.collect()
        start = rss_mb()
        peak = [start]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak[0] = max(peak[0], rss_mb())

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - began, 2)
            after = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu[name] = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
            stop.set()
            thread.join()
            self.growth[name] = round(max(peak[0], rss_mb()) - start, 1)


def names(files: int) -> Iterator[tuple[str, bytes]]:
    """The job's files: ``(path relative to the prefix, body)``, 1,000 a folder."""
    for index in range(files):
        yield f"d{index // 1000:04d}/f{index:07d}.bin", b"%08d" % index


def serve(files: int) -> None:
    """The emulator (metadata store) in this process, its final prefix seeded with the N
    objects straight into the store; prints its API URL, serves until stdin closes."""
    from rahcp_prefect.testing import HCPEmulator

    with HCPEmulator(store="metadata") as emulator:
        emulator.create_bucket(BUCKET)
        store = emulator._meta  # seeding through the store costs no requests
        for rel, body in names(files):
            store.store(BUCKET, FINAL + rel, len(body), f'"{hashlib.md5(body).hexdigest()}"')
        print(json.dumps({"api": emulator.base_url}), flush=True)
        sys.stdin.read()


def seed_tracker(tracker: Any, staging_prefix: str, files: int) -> None:
    """The N files done in the tracker with their digests and times, as after the moves."""
    from rahcp_prefect.tracker.protocol import TransferStatus

    for index, (rel, body) in enumerate(names(files)):
        tracker.mark(
            staging_prefix + rel, len(body), TransferStatus.done, mtime_ns=1_700_000_000_000_000_000 + index,
            sha256=hashlib.sha256(body).hexdigest(), md5=hashlib.md5(body).hexdigest(),
        )
        if index % PAGE == PAGE - 1:
            tracker.flush()
    tracker.flush()


async def child(files: int) -> dict[str, Any]:
    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.job import check_final, plan_staging
    from rahcp_prefect.job.manifest import render_manifest
    from rahcp_prefect.job.mtimes import plan_mtimes, render_mtimes
    from rahcp_prefect.job.recording import record_commit
    from rahcp_prefect.tracker import create_tracker

    peak = Peak()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.commit_memory", "--serve", str(files)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        api = json.loads(server.stdout.readline())["api"]
        with tempfile.TemporaryDirectory() as tmp:
            tracker = create_tracker(Path(tmp) / "tracker.db", job="bench")
            plan = plan_staging(tracker, BUCKET, FINAL, "run-1")
            seed_tracker(tracker, plan.staging_prefix, files)
            async with HCPClient(endpoint=api, username="bench", password="bench") as client:
                with peak.measure("final_check"):
                    check = await check_final(client, tracker, plan)
                assert check.ok and check.checked == files, check.problems()[:3]
                with peak.measure("record"):
                    first = await record_commit(client, tracker, plan)
                assert first.record and first.files == files and first.root == "written" and not first.problems, first
                with peak.measure("quiet"):
                    quiet = await record_commit(client, tracker, plan)
                assert quiet.record is None and quiet.root == "unchanged", quiet
            with peak.measure("reference"):
                done = tracker.done_digests()
                digests = {key[len(plan.staging_prefix):]: record.sha256 for key, record in done.items() if record.sha256}
                manifest = render_manifest(digests)
                times = render_mtimes(plan_mtimes(tracker.iter_done(plan.staging_prefix), plan.staging_prefix))
                assert len(manifest) > 0 and len(times) > 0
                del done, digests, manifest, times
            tracker.close()
    finally:
        server.stdin.close()
        server.wait(60)
    phases = ("final_check", "record", "quiet", "reference")
    return {
        "scenario": "commit-memory",
        "files": files,
        "seconds": {name: peak.seconds[name] for name in phases},
        "growth_mb": {name: peak.growth[name] for name in phases},
        "growth_kb_per_file": {name: round(peak.growth[name] * 1000 / files, 4) for name in phases},
        "cpu_us_per_file": {name: round(peak.cpu[name] * 1e6 / files, 1) for name in phases},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", default="10000,100000,300000", help="comma-separated N")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.child:
        print(json.dumps(asyncio.run(child(args.child))), flush=True)
        return
    results = []
    for files in (int(n) for n in args.files.split(",")):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.commit_memory", "--child", str(files)],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout.strip().splitlines()[-1]
        print(out, flush=True)
        results.append(json.loads(out))
    if len(results) > 1:
        low, high = results[0], results[-1]
        span = high["files"] - low["files"]
        growth = {
            name: round((high["growth_mb"][name] - low["growth_mb"][name]) * 1000 / span, 4)
            for name in ("final_check", "record", "quiet", "reference")
        }
        ours = max(growth["final_check"], growth["record"], growth["quiet"])
        print(json.dumps({
            "scenario": "commit-memory-growth", "from_files": low["files"], "to_files": high["files"],
            "growth_kb_per_file": growth, "ours_max_kb_per_file": ours,
            "reference_kb_per_file": growth["reference"],
            "bars": {"growth<=0.05KB/file": ours <= 0.05},
        }), flush=True)


if __name__ == "__main__":
    main()
