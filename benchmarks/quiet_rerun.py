"""What a night costs in requests: a no-change rerun, and a night with a few changed files.

    python -m benchmarks.quiet_rerun [--files 10000] [--changed 10] [--size 1024]

The emulator (API + moto S3, HCP's rules, a namespace with HCP's defaults) runs in its own
process; the flows run on a temporary Prefect server with a SQLite tracker. A first
``bulk-upload`` commits ``--files`` files; then the same job runs again with nothing changed,
then with ``--changed`` files rewritten. For each rerun the emulator's request counts (``GET
/_emulator/stats``, reset before the run) and its seconds are printed as one JSON object, with
the writes (PUT, DELETE, POST: the tag files and records) apart. Run it on two trees (this
release and the one before) to compare: the script only uses the flow and the emulator.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.flow_overhead import flow_bench_args, make_files, timed_flow_upload
from benchmarks.sync_rerun import change_files
from benchmarks.transfer import Emulator

PREFIX = "quiet/"


def stats(api: str, reset: bool = False) -> dict[str, int]:
    """The emulator's request counts by ``plane method route`` (reset them with ``reset``)."""
    control = api.rsplit("/api/", 1)[0] + "/_emulator/stats"  # the control routes sit at the root
    if reset:
        httpx.delete(control).raise_for_status()
        return {}
    answer = httpx.get(control).json()
    return {f"{c['plane']} {c['method']} {c['route']}": c["count"] for c in answer["counts"] if c["plane"] != "backend"}


def night(api: str, bucket: str, source: Path, db: Path, workers: int) -> dict[str, Any]:
    stats(api, reset=True)
    seconds, _state, result = asyncio.run(timed_flow_upload(api, bucket, source, db, workers, PREFIX))
    counts = stats(api)
    writes = {k: n for k, n in counts.items() if k.split()[1] in ("PUT", "DELETE") or "copy" in k}
    return {
        "seconds": round(seconds, 2), "requests": sum(counts.values()), "writes": writes, "counts": counts,
        "result": {k: result.get(k) for k in ("ok", "changed", "unchanged", "committed", "manifest", "record")},
    }


def main() -> None:
    parser = flow_bench_args(__doc__.splitlines()[0])
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="rahcp-quiet-bench-") as tmp, Emulator() as emulator:
        work = Path(tmp)
        source, db = work / "src", work / "tracker.db"
        make_files(source, args.files, args.size)
        bucket = emulator.bucket("quiet")
        with prefect_test_harness(server_startup_timeout=120):
            first = night(emulator.api, bucket, source, db, args.workers)
            quiet = night(emulator.api, bucket, source, db, args.workers)
            change_files(source, args.changed)
            changed = night(emulator.api, bucket, source, db, args.workers)
    print(json.dumps({
        "scenario": f"quiet-rerun-{args.files}",
        "first": {k: first[k] for k in ("seconds", "requests", "result")},
        "no_change_rerun": quiet,
        f"rerun_{args.changed}_changed": changed,
    }))


if __name__ == "__main__":
    main()
