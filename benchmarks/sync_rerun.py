"""What a rerun costs when little changed: a committed job, then a rerun with a few files changed.

    python -m benchmarks.sync_rerun [--files 10000] [--changed 10] [--size 1024]

The emulator (API + moto S3) runs in its own process; the flows run on a temporary Prefect
server (``prefect_test_harness``) with a SQLite tracker. The first run uploads ``--files``
files through the ``bulk-upload`` flow (staging, staging check, commit). Then ``--changed``
files are changed (half rewritten in place with the same size and a new mtime, half grown)
and the flow runs again on the same job: it must send only those, through staging, and
commit them over the old objects. The final prefix is then checked byte for byte, and its
manifest against the source.

Prints one JSON object: both runs' seconds, the ratio rerun / first run (the bar: at most
0.10), the rerun's sync counts and files sent (the bar: exactly ``--changed``; the PUT count
itself is asserted by ``tests/reliability/test_sync.py`` on the in-process emulator).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from pathlib import Path

from benchmarks.flow_overhead import flow_bench_args, make_files, timed_flow_upload
from benchmarks.transfer import Emulator
from rahcp_prefect.job.manifest import MANIFEST_NAME, is_tag_path, parse_manifest

PREFIX = "sync/"


def change_files(root: Path, count: int) -> list[Path]:
    """Change ``count`` files spread over the tree: even ones rewritten in place (same size,
    mtime forced forward), odd ones grown."""
    files = sorted(root.rglob("*.bin"))
    step = max(1, len(files) // count)
    changed = files[::step][:count]
    for index, path in enumerate(changed):
        size = path.stat().st_size
        if index % 2 == 0:
            path.write_bytes(os.urandom(size))
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        else:
            path.write_bytes(path.read_bytes() + b"grown")
    return changed


def final_matches(emulator: Emulator, bucket: str, source: Path) -> bool:
    """Whether the final prefix holds every file of ``source`` byte for byte and nothing else but
    the job's manifest, which must list exactly those files with their SHA-256."""
    s3 = emulator.s3
    remote: dict[str, str] = {}
    manifest: dict[str, str] | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            relative = item["Key"][len(PREFIX):]
            if relative == MANIFEST_NAME:
                manifest = parse_manifest(body)
            elif not is_tag_path(relative):  # the times and the records are the job's, not payload
                remote[relative] = hashlib.sha256(body).hexdigest()
    local = {p.relative_to(source).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in source.rglob("*.bin")}
    return remote == local == manifest


def main() -> None:
    parser = flow_bench_args(__doc__.splitlines()[0])
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="rahcp-sync-bench-") as tmp, Emulator() as emulator:
        work = Path(tmp)
        source = work / "src"
        make_files(source, args.files, args.size)
        bucket = emulator.bucket("sync")
        with prefect_test_harness(server_startup_timeout=120):
            db = work / "tracker.db"
            first_s, _, first = asyncio.run(timed_flow_upload(emulator.api, bucket, source, db, args.workers, PREFIX))
            change_files(source, args.changed)
            rerun_s, _, rerun = asyncio.run(timed_flow_upload(emulator.api, bucket, source, db, args.workers, PREFIX))
        intact = final_matches(emulator, bucket, source)
    ratio = rerun_s / first_s
    sent = rerun.get("changed", 0) + rerun.get("new", 0) + rerun.get("missing", 0)
    print(
        json.dumps(
            {
                "scenario": f"sync-rerun-{args.files}-{args.changed}-changed",
                "first_run_seconds": round(first_s, 2),
                "rerun_seconds": round(rerun_s, 2),
                "ratio": round(ratio, 3),
                "first_run": {k: first.get(k) for k in ("ok", "new", "committed")},
                "rerun": {k: rerun.get(k) for k in ("ok", "new", "changed", "missing", "unchanged", "committed")},
                "first_run_phases": first.get("phases"),
                "rerun_phases": rerun.get("phases"),
                "final_prefix_byte_identical": intact,
                "bars": {
                    "rerun<=0.10xfirst": ratio <= 0.10,
                    "only_changed_sent": sent == args.changed == rerun.get("ok") == rerun.get("committed"),
                    "final_prefix_byte_identical": intact,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
