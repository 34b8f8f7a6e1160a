"""Latency (issue 31): the adaptive window against fixed settings and rclone, 0/20/50 ms away.

    python -m benchmarks.latency [--delays 0,20,50] [--sweep 10,32,64,128] [--repeat 1]
                                 [--only transfer,commit] [--directions upload,download]
                                 [--rclone-transfers 64]
                                 [--files 5000] [--commit-objects 2000] [--share-cpus]

The emulator runs in its own process (``benchmarks.transfer.Emulator``), on a CPU of its own
unless ``--share-cpus`` (``benchmarks.transfer.keep_apart``); its delay fault adds
``delay`` ms to every request of both planes (API and S3), as a distant HCP would. For each delay:

- ``transfer``: ``--files`` (5,000) files of 10 KB uploaded, then downloaded, by
  ours at default settings (``workers`` ``defaults.WORKERS``, the window adaptive up to ``max_workers``), by ours
  with a fixed window of each ``--sweep`` size (``workers == max_workers``), and by rclone
  ``--transfers 10`` (straight to the S3 server, with the same delay) when rclone is installed;
  each client in a fresh process (``--rclone-transfers``: rclone also with those ``--transfers``,
  what the emulator serves a light client, no bar). Ratios: default / best fixed, default / rclone. Each run
  gives the emulator's requests per file (``requests_per_file``, by plane and method).
- ``commit`` (``--commit-delays``, 0 and 50 ms by default): ``--commit-objects`` staged objects
  moved by ``commit_staging`` at default settings (``commit_concurrency`` ``defaults.COMMIT_CONCURRENCY``, adaptive) and with
  fixed windows of 8, 32, 64 and 128 copies; ratio default / best fixed (copies per second).

Prints one JSON object per delay and part, then one with every bar and its verdict. With
``--repeat`` above 1 each part also gives ``default_over_best_fixed_paired``: the median of the
per-round ratios default / best fixed (the clients of a round run back to back, so the host's
drift between rounds cancels). The bars read the ratio of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.transfer import (
    PASSWORD,
    SMALL_SIZE,
    USER,
    Emulator,
    add_cpu_option,
    keep_apart,
    load_objects,
    paired_ratio,
    prepare_tree,
    run_child,
)
from rahcp_prefect import defaults

RCLONE = shutil.which("rclone")
COMMIT_SWEEP = (8, 32, 64, 128)
TRANSFER_FILES = 5000
"""Files of 10 KB per transfer run. Once the emulator served a small GET in half the CPU
(``testing.s3dispatch``), 2,000 files took 1.6-2.4 s at 0 and 20 ms, and the window's first
epochs (its slow start, a probe and its second look) were a tenth of that; a night of
a million files pays them once."""


def _control(emu: Emulator) -> str:
    return emu.api.rsplit("/api/", 1)[0] + "/_emulator"


def _delay(emu: Emulator, seconds: float) -> None:
    """Every request of both planes held ``seconds`` (none when 0)."""
    httpx.delete(_control(emu) + "/faults").raise_for_status()
    if seconds:
        for plane in ("api", "data"):
            httpx.post(_control(emu) + "/faults", json={"plane": plane, "delay": seconds, "count": None}).raise_for_status()


def _requests(emu: Emulator, reset: bool = False) -> dict[str, int]:
    """The emulator's request counts by ``plane method`` (the backend's own calls left out);
    ``reset`` starts them again from zero."""
    if reset:
        httpx.delete(_control(emu) + "/stats").raise_for_status()
        return {}
    counts: dict[str, int] = {}
    for row in httpx.get(_control(emu) + "/stats").json()["counts"]:
        if row["plane"] != "backend":
            name = f"{row['plane']} {row['method']}"
            counts[name] = counts.get(name, 0) + row["count"]
    return counts


def _s3_endpoint(emu: Emulator) -> str:
    return str(emu.s3.meta.endpoint_url)


# -- one run of each client ----------------------------------------------------------------------


def _ours(emu: Emulator, direction: str, source: Path, work: Path, bucket: str, workers: int, fixed: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"api": emu.api, "runner": "ours", "direction": direction, "workers": workers,
                            "bucket": bucket, "tracker": str(work / f"{direction}-{time.monotonic_ns()}.db"), "job": direction}
    if fixed:
        spec["max_workers"] = workers
    if direction == "upload":
        spec["source"] = str(source)
    else:
        spec["dest"] = str(work / "dest")
    out = run_child(spec)
    shutil.rmtree(work / "dest", ignore_errors=True)
    return {"files_per_s": out["files_per_s"], "seconds": out["seconds"], "window": out.get("window"),
            "ok": out.get("ok"), "errors": out.get("errors")}


def _rclone(
    emu: Emulator, direction: str, source: Path, work: Path, bucket: str, files: int, transfers: int = 10
) -> dict[str, Any]:
    assert RCLONE is not None
    # AWS_CA_BUNDLE would make rclone's S3 SDK load a CA bundle for a plain-HTTP endpoint and fail
    env = {name: value for name, value in os.environ.items() if name != "AWS_CA_BUNDLE"}
    env |= {"RCLONE_CONFIG_EMU_TYPE": "s3", "RCLONE_CONFIG_EMU_PROVIDER": "Other",
           "RCLONE_CONFIG_EMU_ENDPOINT": _s3_endpoint(emu), "RCLONE_CONFIG_EMU_ACCESS_KEY_ID": "testing",
           "RCLONE_CONFIG_EMU_SECRET_ACCESS_KEY": "testing", "RCLONE_CONFIG_EMU_REGION": "us-east-1",
           "RCLONE_CONFIG_EMU_FORCE_PATH_STYLE": "true"}
    dest = work / "rclone-dest"
    src, dst = (str(source), f"emu:{bucket}") if direction == "upload" else (f"emu:{bucket}", str(dest))
    command = [RCLONE, "copy", src, dst, "--transfers", str(transfers), "--s3-no-check-bucket", "--config", "/dev/null"]
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"rclone {direction} failed: {proc.stderr[-2000:]}")
    if direction == "download":
        got = sum(1 for p in dest.rglob("*") if p.is_file())
        shutil.rmtree(dest, ignore_errors=True)
        if got != files:
            raise RuntimeError(f"rclone downloaded {got} of {files} files")
    return {"files_per_s": round(files / seconds, 1), "seconds": round(seconds, 3)}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(runs, key=lambda r: r["files_per_s"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    if len(runs) > 1:
        chosen["runs"] = [r["files_per_s"] for r in runs]
    return chosen


# -- the transfer part ---------------------------------------------------------------------------


def transfer(
    emu: Emulator, delay_ms: int, sweep: list[int], repeat: int, data: Path, work: Path,
    directions: tuple[str, ...] = ("upload", "download"), rclone_more: tuple[int, ...] = (),
    files: int = TRANSFER_FILES,
) -> dict[str, Any]:
    source = prepare_tree(data, f"latency-{files}", files, SMALL_SIZE)
    clients: list[tuple[str, Any]] = [("default", None)] + [(f"fixed-{n}", n) for n in sweep]
    if RCLONE:
        clients.append(("rclone", "rclone"))
        clients += [(f"rclone-{n}", f"rclone-{n}") for n in rclone_more]
    out: dict[str, Any] = {"scenario": "transfer", "delay_ms": delay_ms, "files": files}
    if not RCLONE:
        out["note"] = "rclone is not installed (apt-get install rclone): its comparison is skipped"
    for direction in directions:
        results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in clients}
        if direction == "download":
            _delay(emu, 0)
            bucket = emu.bucket("lat-down")
            load_objects(emu, bucket, source)
        for n in range(repeat):
            order = clients if n % 2 == 0 else list(reversed(clients))
            for name, how in order:
                if direction == "upload":
                    bucket = emu.bucket(f"lat-up-{name}")
                _delay(emu, delay_ms / 1000)
                _requests(emu, reset=True)
                if isinstance(how, str):  # rclone, rclone-<transfers>
                    run = _rclone(emu, direction, source, work, bucket, files, int(how.partition("-")[2] or 10))
                else:
                    workers = defaults.WORKERS if how is None else how
                    run = _ours(emu, direction, source, work, bucket, workers, fixed=how is not None)
                _delay(emu, 0)
                run["requests_per_file"] = {
                    what: round(count / files, 3) for what, count in sorted(_requests(emu).items())
                }
                results[name].append(run)
                if direction == "upload":
                    emu.empty(bucket)
        if direction == "download":
            emu.empty(bucket)
        figures = {name: _median_run(runs) for name, runs in results.items()}
        best = max((name for name in figures if name.startswith("fixed-")), key=lambda k: figures[k]["files_per_s"])
        part: dict[str, Any] = {"runs": figures, "best_fixed": best,
                                "default_over_best_fixed": round(figures["default"]["files_per_s"] / figures[best]["files_per_s"], 3)}
        if repeat > 1:
            part["default_over_best_fixed_paired"] = paired_ratio(figures["default"]["runs"], figures[best]["runs"])
        if "rclone" in figures:
            part["default_over_rclone"] = round(figures["default"]["files_per_s"] / figures["rclone"]["files_per_s"], 3)
        out[direction] = part
    _delay(emu, 0)
    return out


# -- the commit part -----------------------------------------------------------------------------


async def _commit_once(emu: Emulator, bucket: str, objects: int, concurrency: int, fixed: bool, delay: float) -> dict[str, Any]:
    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.client.prefix_moves import move_prefix

    for index in range(objects):
        emu.s3.put_object(Bucket=bucket, Key=f"staging/{index:06d}", Body=b"x" * 100)
    async with HCPClient(endpoint=emu.api, username=USER, password=PASSWORD) as client:
        await client.s3.list_objects(bucket, prefix="staging/", max_keys=1)  # logged in before the clock
        _delay(emu, delay)
        started = time.perf_counter()
        moves = await move_prefix(
            client, bucket, "staging/", "final/", concurrency=concurrency, max_concurrency=concurrency if fixed else 256,
        )
        elapsed = time.perf_counter() - started
        _delay(emu, 0)
    emu.empty(bucket)
    if moves.objects != objects:
        raise RuntimeError(f"moved {moves.objects} of {objects}")
    return {"copies_per_s": round(objects / elapsed, 1), "seconds": round(elapsed, 3), "window": moves.window}


def commit(emu: Emulator, delay_ms: int, objects: int, repeat: int) -> dict[str, Any]:
    bucket = emu.bucket("lat-commit")
    configs = [("default", defaults.COMMIT_CONCURRENCY, False)] + [(f"fixed-{n}", n, True) for n in COMMIT_SWEEP]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configs}
    for n in range(repeat):
        for name, concurrency, fixed in configs if n % 2 == 0 else list(reversed(configs)):
            results[name].append(asyncio.run(_commit_once(emu, bucket, objects, concurrency, fixed, delay_ms / 1000)))
    figures = {}
    for name, runs in results.items():
        ranked = sorted(runs, key=lambda r: r["copies_per_s"])
        figures[name] = dict(ranked[(len(ranked) - 1) // 2], runs=[r["copies_per_s"] for r in runs])
    best = max((name for name in figures if name.startswith("fixed-")), key=lambda k: figures[k]["copies_per_s"])
    out = {"scenario": "commit", "delay_ms": delay_ms, "objects": objects, "runs": figures, "best_fixed": best,
           "default_over_best_fixed": round(figures["default"]["copies_per_s"] / figures[best]["copies_per_s"], 3)}
    if repeat > 1:
        out["default_over_best_fixed_paired"] = paired_ratio(figures["default"]["runs"], figures[best]["runs"])
    return out


# -- bars ----------------------------------------------------------------------------------------


def bars(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's bars, each with its value and verdict."""
    out: dict[str, Any] = {}

    def bar(name: str, value: float | None, least: float) -> None:
        out[name] = {"value": value, "bar": f">= {least}", "ok": value is not None and value >= least}

    for line in lines:
        delay = line["delay_ms"]
        if line["scenario"] == "commit":
            bar(f"commit {delay} ms: default / best fixed", line["default_over_best_fixed"], 0.9)
            continue
        for direction in ("upload", "download"):
            if direction not in line:
                continue
            part = line[direction]
            bar(f"{direction} {delay} ms: default / best fixed", part["default_over_best_fixed"], 0.9)
            if "default_over_rclone" in part:
                least = 2.0 if delay >= 50 else (1.5 if direction == "upload" else 1.0) if delay == 0 else None
                if least is not None:
                    bar(f"{direction} {delay} ms: default / rclone --transfers 10", part["default_over_rclone"], least)
                else:
                    out[f"{direction} {delay} ms: default / rclone --transfers 10"] = {"value": part["default_over_rclone"]}
    return {"scenario": "bars", "bars": out, "all_met": all(b.get("ok", True) for b in out.values())}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "rahcp-bench-transfer"))
    parser.add_argument("--delays", default="0,20,50", help="ms added to every request, comma-separated")
    parser.add_argument("--commit-delays", default="0,50")
    parser.add_argument("--files", type=int, default=TRANSFER_FILES, help="10 KB files per transfer run")
    parser.add_argument("--sweep", default="10,32,64,128", help="fixed workers to compare")
    parser.add_argument("--repeat", type=int, default=1, help="runs per client (alternating order); median kept")
    parser.add_argument("--only", default="transfer,commit")
    parser.add_argument("--directions", default="upload,download", help="the transfer part's directions")
    parser.add_argument("--rclone-transfers", default="",
                        help="rclone also with these --transfers (comma-separated; no bar)")
    # 2,000: a run of 600 copies lasted 2 s at 0 ms, so the window's first epochs and the host's
    # noise were much of it (default / best fixed 0.89, paired 0.97); 2,000 last about 8 s.
    parser.add_argument("--commit-objects", type=int, default=2000)
    add_cpu_option(parser)
    args = parser.parse_args()
    print(json.dumps({"cpus": None if args.share_cpus else keep_apart()}), flush=True)
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="latency-", dir=data))
    lines: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        with Emulator() as emu:
            if "transfer" in wanted:
                for delay in (int(d) for d in args.delays.split(",")):
                    lines.append(transfer(emu, delay, [int(n) for n in args.sweep.split(",")], args.repeat, data, work,
                                         tuple(args.directions.split(",")),
                                         tuple(int(n) for n in args.rclone_transfers.split(",") if n), args.files))
                    print(json.dumps(lines[-1]), flush=True)
            if "commit" in wanted:
                for delay in (int(d) for d in args.commit_delays.split(",")):
                    lines.append(commit(emu, delay, args.commit_objects, args.repeat))
                    print(json.dumps(lines[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(bars(lines)), flush=True)
    print(json.dumps({"total_seconds": round(time.perf_counter() - started, 1),
                      "load_1min": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
