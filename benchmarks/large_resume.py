"""Part-level resume of a large upload: a 1 GiB upload killed at ~60 % of its parts, then resumed.

    python -m benchmarks.large_resume [--data-dir DIR] [--kill-at 0.6]

The emulator runs in its own process (as in ``benchmarks.transfer``); each client is a fresh child
process running the engine (``bulk_upload`` with a SQLite tracker, which records the parts). The
same run measures the reference: a full upload of the same file into an empty bucket. Then a
second upload is killed (SIGKILL) once the tracker holds ``--kill-at`` of the parts, and a new
process resumes it. Printed: the resumed upload's time over the full one (bar: <= 0.5), also
without the CompleteMultipartUpload (which with moto's own complete, before the emulator joined
the parts in place, was most of either run), the parts each run sent (emulator counts) and
peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.transfer import LARGE_SIZE, Emulator, _verdict, prepare_large, run_child

PART_PUTS = "/{bucket}/{key}?partNumber"


def _parts_recorded(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM rahcp_parts").fetchone()[0])
    except sqlite3.Error:
        return 0


def _part_puts(emu: Emulator) -> int:
    import httpx

    counts = httpx.get(emu.api.rsplit("/api/", 1)[0] + "/_emulator/stats").json()["counts"]
    return sum(c["count"] for c in counts if c["plane"] == "data" and c["route"] == PART_PUTS and c["method"] == "PUT")


def _kill_after(spec: dict[str, Any], db: Path, parts: int) -> float:
    """Start the upload in a child and SIGKILL it once ``parts`` parts are recorded; returns
    the seconds it ran."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.transfer", "--child", json.dumps(spec)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while _parts_recorded(db) < parts:
            if child.poll() is not None:
                raise RuntimeError("the upload ended before it could be killed")
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.large_resume")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "rahcp-bench-transfer"))
    parser.add_argument("--kill-at", type=float, default=0.6, help="share of the parts recorded at the kill")
    args = parser.parse_args()
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    source = prepare_large(data)
    work = Path(tempfile.mkdtemp(prefix="resume-", dir=data))
    from rahcp_prefect.client.config import ClientConfig
    from rahcp_prefect.client.multipart import part_size_for

    total_parts = math.ceil(LARGE_SIZE / part_size_for(LARGE_SIZE, ClientConfig().multipart_chunk))
    kill_parts = max(1, round(total_parts * args.kill_at))
    started = time.perf_counter()
    try:
        with Emulator() as emu:
            base = {"api": emu.api, "workers": 10, "runner": "ours", "direction": "upload", "source": str(source)}
            bucket = emu.bucket("resume-full")
            full = run_child({**base, "bucket": bucket, "tracker": str(work / "full.db"), "job": "full"})
            emu.empty(bucket)

            bucket = emu.bucket("resume-killed")
            db = work / "killed.db"
            spec = {**base, "bucket": bucket, "tracker": str(db), "job": "resume"}
            killed_s = _kill_after(spec, db, kill_parts)
            recorded = _parts_recorded(db)
            time.sleep(1.0)  # requests the dead client had in flight finish on the server
            import httpx

            httpx.delete(emu.api.rsplit("/api/", 1)[0] + "/_emulator/stats")
            resumed = run_child(spec)
            resent = _part_puts(emu)
            emu.empty(bucket)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = round(resumed["seconds"] / full["seconds"], 3)
    without = None
    if full.get("multipart_complete_s") and resumed.get("multipart_complete_s"):
        without = round(
            (resumed["seconds"] - resumed["multipart_complete_s"]) / (full["seconds"] - full["multipart_complete_s"]), 3
        )
    print(json.dumps({
        "scenario": "upload-large-resume",
        "parts": total_parts,
        "killed_after_s": round(killed_s, 2),
        "parts_recorded_at_kill": recorded,
        "parts_sent_by_resume": resent,
        "ours": {"full": full, "resumed": resumed},
        "ratio": ratio,
        "ratio_without_complete": without,
        "bars": {
            "resume_over_full": _verdict(ratio, "<=", 0.5),
            "resume_peak_rss_mb": _verdict(resumed["peak_rss_mb"], "<=", 200),
        },
        "total_seconds": round(time.perf_counter() - started, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
