"""Throttling, a bandwidth cap and latency (issue 21): each figure is a ratio within one run.

    python -m benchmarks.throttling [--data-dir DIR] [--only storm,bandwidth,latency] [--workers 10]

Uses the emulator process and the child runners of ``benchmarks.transfer`` (every client in a
fresh process of its own; faults set through the emulator's ``/_emulator/faults`` route):

- ``storm``: ``STORM_FILES`` small files uploaded by ours, once quietly and once through 503
  ``SlowDown`` on 60 % of data-plane PUTs during the first 20 s; files/s through the storm over
  files/s without it, the PUTs sent per file, the throttled answers counted, files failed.
- ``bandwidth``: ours uploads then downloads ``BW_FILES`` files of 2.5 MB with ``max_bandwidth``
  set; the achieved rate over the cap, each direction (within 10 %: 0.90-1.10).
- ``latency``: the 2,000 small files of ``benchmarks.transfer`` with 20 ms added to every
  data-plane request (the emulator's delay fault): ours against the floor with the same delay.

Prints one JSON object per scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.transfer import Emulator, _median, prepare_small, prepare_tree, run_child

STORM_FILES = 3000
STORM_SIZE = 10 * 1000
STORM_SECONDS = 20.0
BW_FILES = 40
BW_SIZE = 2_500_000
BW_CAP = "20MB"
BW_RATE = 20_000_000
DELAY = 0.020


def _control(emu: Emulator) -> str:
    return emu.api.rsplit("/api/", 1)[0] + "/_emulator"


def _fault(emu: Emulator, **rule: Any) -> None:
    httpx.post(_control(emu) + "/faults", json=rule).raise_for_status()


def _clear(emu: Emulator) -> None:
    httpx.delete(_control(emu) + "/faults").raise_for_status()
    httpx.delete(_control(emu) + "/stats").raise_for_status()


def _count(emu: Emulator, plane: str, method: str) -> int:
    counts = httpx.get(_control(emu) + "/stats").json()["counts"]
    return sum(c["count"] for c in counts if c["plane"] == plane and c["method"] == method and c["route"] == "/{bucket}/{key}")


def _upload(emu: Emulator, base: dict[str, Any], source: Path, work: Path, name: str, **extra: Any) -> dict[str, Any]:
    bucket = emu.bucket(name)
    out = run_child({**base, "runner": "ours", "direction": "upload", "source": str(source), "bucket": bucket,
                     "tracker": str(work / f"{name}-{time.monotonic_ns()}.db"), "job": name, **extra})
    out["bucket"] = bucket
    return out


def storm(emu: Emulator, base: dict[str, Any], data: Path, work: Path) -> dict[str, Any]:
    source = prepare_tree(data, "storm", STORM_FILES, STORM_SIZE)
    _clear(emu)
    quiet = _upload(emu, base, source, work, "quiet")
    quiet_puts = _count(emu, "data", "PUT")
    emu.empty(quiet["bucket"])
    _clear(emu)
    _fault(emu, plane="data", method="PUT", path=r"^/[^/]+/.", status=503, code="SlowDown", probability=0.6, count=None,
           duration=STORM_SECONDS)
    stormy = _upload(emu, base, source, work, "storm")
    storm_puts = _count(emu, "data", "PUT")
    emu.empty(stormy["bucket"])
    _clear(emu)
    return {
        "scenario": "storm",
        "files": STORM_FILES,
        "storm_s": STORM_SECONDS,
        "quiet_files_per_s": quiet["files_per_s"],
        "storm_files_per_s": stormy["files_per_s"],
        "ratio": round(stormy["files_per_s"] / quiet["files_per_s"], 3),
        "storm_wall_s": stormy["seconds"],
        "puts_per_file": {"quiet": round(quiet_puts / STORM_FILES, 3), "storm": round(storm_puts / STORM_FILES, 3)},
        "throttled": stormy["throttled"],
        "errors": stormy.get("errors"),
        "ok": stormy.get("ok"),
    }


def bandwidth(emu: Emulator, base: dict[str, Any], data: Path, work: Path) -> dict[str, Any]:
    source = prepare_tree(data, "bandwidth", BW_FILES, BW_SIZE)
    total = BW_FILES * BW_SIZE
    capped = {"client": {"max_bandwidth": BW_CAP}}
    up = _upload(emu, base, source, work, "bw", **capped)
    keys = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.bin"))
    dest = work / "bw-down"
    down = run_child({**base, "runner": "ours", "direction": "download", "dest": str(dest), "bucket": up["bucket"],
                      "tracker": str(work / "bw-down.db"), "job": "bw-down", **capped,
                      "entries": [[k, BW_SIZE] for k in keys]})
    shutil.rmtree(dest, ignore_errors=True)
    emu.empty(up["bucket"])
    up_rate = total / up["seconds"]
    down_rate = total / down["seconds"]
    return {
        "scenario": "bandwidth",
        "cap_bytes_per_s": BW_RATE,
        "bytes": total,
        "upload_bytes_per_s": round(up_rate),
        "download_bytes_per_s": round(down_rate),
        "upload_over_cap": round(up_rate / BW_RATE, 3),
        "download_over_cap": round(down_rate / BW_RATE, 3),
    }


def latency(emu: Emulator, base: dict[str, Any], data: Path, work: Path, repeat: int) -> dict[str, Any]:
    source = prepare_small(data)
    mines: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    for n in range(repeat):
        def floor_run() -> None:
            bucket = emu.bucket("lat-floor")
            floors.append(run_child({**base, "runner": "floor-upload", "source": str(source), "bucket": bucket}))
            emu.empty(bucket)

        def our_run() -> None:
            mine = _upload(emu, base, source, work, "lat-ours")
            emu.empty(mine["bucket"])
            mines.append(mine)

        for run in (floor_run, our_run) if n % 2 == 0 else (our_run, floor_run):
            _clear(emu)
            _fault(emu, plane="data", delay=DELAY, count=None)
            run()
    _clear(emu)
    mine, floor = _median(mines, "files_per_s"), _median(floors, "files_per_s")
    return {
        "scenario": "latency",
        "delay_ms": DELAY * 1000,
        "ours_files_per_s": mine["files_per_s"],
        "floor_files_per_s": floor["files_per_s"],
        "ratio": round(mine["files_per_s"] / floor["files_per_s"], 3),
        "ours_runs": mine.get("runs"),
        "floor_runs": floor.get("runs"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throttling")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "rahcp-bench-transfer"))
    parser.add_argument("--only", default="", help="comma-separated: storm, bandwidth, latency")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per client in latency (median kept)")
    args = parser.parse_args()
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    wanted = set(filter(None, args.only.split(","))) or {"storm", "bandwidth", "latency"}
    work = Path(tempfile.mkdtemp(prefix="throttle-", dir=data))
    try:
        with Emulator() as emu:
            base = {"api": emu.api, "workers": args.workers}
            if "storm" in wanted:
                print(json.dumps(storm(emu, base, data, work)), flush=True)
            if "bandwidth" in wanted:
                print(json.dumps(bandwidth(emu, base, data, work)), flush=True)
            if "latency" in wanted:
                print(json.dumps(latency(emu, base, data, work, args.repeat)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
