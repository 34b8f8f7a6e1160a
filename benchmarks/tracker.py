"""Tracker benchmarks: the issue's speed bars, for PostgreSQL and SQLite, in one run.

Run: ``.venv/bin/python -m benchmarks.tracker [--dsn postgresql://...] [--only mark-100k,...]``
(the DSN defaults to ``RAHCP_BENCH_POSTGRES_DSN``, then ``RAHCP_TEST_POSTGRES_DSN``, then the
local ``postgresql://postgres@127.0.0.1:5432/test``). Every job it creates is deleted again, and
``rahcp_transfers`` is vacuumed before each scenario and at the end.

Prints one JSON object per line per scenario and backend: ``value`` (the figure), ``bar`` (the
issue's bar; SQLite's is 2x PostgreSQL's), ``ratio`` (how the figure compares with the bar,
``>= 1`` meets it: bar/value for times, value/bar for rates), ``ok``; SQLite rows also carry
``vs_postgres`` (SQLite's figure over PostgreSQL's from the same run) and ``within_2x_of_postgres``.

Scenarios:
- ``mark-100k``: 100,000 buffered ``mark`` calls (default ``flush_every``) plus the final
  ``commit``, into a fresh job of a table that may already hold other jobs.
- ``done-keys-1m``: ``done_keys()`` of a job with 1,000,000 done rows (median of 3 calls).
- ``claim-100k-4proc``: 4 processes claim a 100,000-key job in batches of 500 at once, from
  the moment they are released together until the job is drained (claims only, no marks).
  Every key must be handed out exactly once, or the run fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rahcp_prefect.tracker import TransferStatus, create_tracker

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
MARK_KEYS = 100_000
DONE_ROWS = 1_000_000
CLAIM_KEYS = 100_000
CLAIM_BATCH = 500
CLAIM_PROCS = 4

#: scenario -> (PostgreSQL bar, unit, "time" (lower is better) or "rate" (higher is better))
BARS: dict[str, tuple[float, str, str]] = {
    "mark-100k": (3.0, "s", "time"),
    "done-keys-1m": (3.0, "s", "time"),
    "claim-100k-4proc": (20_000.0, "keys/s", "rate"),
}
SQLITE_FACTOR = 2.0  # "SQLite within 2x of those"


def vacuum(target: str) -> None:
    """Reclaim the dead rows a scenario left behind (PostgreSQL only).

    The benchmark deletes its million-row jobs; on a server without autovacuum (as on these
    machines) the next scenario would otherwise scan that garbage and measure it.
    """
    if not target.startswith(("postgresql://", "postgres://")):
        return
    import psycopg

    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) rahcp_transfers")


def _key(i: int) -> str:
    return f"bench/dir{i % 100:02}/file-{i:07}.bin"


def _job(scenario: str) -> str:
    return f"bench:{scenario}:{uuid.uuid4().hex[:10]}"


# -- scenarios -------------------------------------------------------------------------------
def bench_mark(target: str) -> dict[str, Any]:
    job = _job("mark")
    tracker = create_tracker(target, job=job)
    try:
        started = time.perf_counter()
        for i in range(MARK_KEYS):
            tracker.mark(_key(i), i, TransferStatus.done, etag='"0123456789abcdef"')
        tracker.flush()
        seconds = time.perf_counter() - started
        assert tracker.summary()["done"] == MARK_KEYS
        return {"value": seconds, "marks_per_s": MARK_KEYS / seconds}
    finally:
        tracker.delete_job()  # type: ignore[attr-defined]
        tracker.close()


def bench_done_keys(target: str) -> dict[str, Any]:
    job = _job("done-keys")
    tracker = create_tracker(target, job=job, flush_every=50_000)
    try:
        setup = time.perf_counter()
        for i in range(DONE_ROWS):
            tracker.mark(_key(i), i, TransferStatus.done)
        tracker.flush()
        setup = time.perf_counter() - setup
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            keys = tracker.done_keys()
            runs.append(time.perf_counter() - started)
            assert len(keys) == DONE_ROWS
            del keys
        return {"value": statistics.median(runs), "runs": runs, "setup_s": setup}
    finally:
        tracker.delete_job()  # type: ignore[attr-defined]
        tracker.close()


def _claimer(target: str, job: str, owner: str, ready: Any, go: Any, out: Any) -> None:
    """One claiming process: waits for ``go``, drains the job, reports its keys and times."""
    tracker = create_tracker(target, job=job)
    ready.set()
    go.wait()
    started = time.perf_counter()
    keys: list[str] = []
    calls = 0
    while batch := tracker.claim(owner, CLAIM_BATCH, 300):
        keys.extend(k for k, _ in batch)
        calls += 1
    finished = time.time()
    tracker.close()
    out.put({"owner": owner, "keys": keys, "calls": calls, "finished": finished,
             "busy_s": time.perf_counter() - started})


def bench_claim(target: str) -> dict[str, Any]:
    job = _job("claim")
    with create_tracker(target, job=job) as tracker:  # type: ignore[attr-defined]
        assert tracker.register((_key(i), i) for i in range(CLAIM_KEYS)) == CLAIM_KEYS
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(CLAIM_PROCS)]
    procs = [
        ctx.Process(target=_claimer, args=(target, job, f"bench-{n}", readies[n], go, out))
        for n in range(CLAIM_PROCS)
    ]
    try:
        for proc in procs:
            proc.start()
        for ready in readies:
            if not ready.wait(120):
                raise RuntimeError("a claiming process did not start")
        released = time.time()
        go.set()
        results = [out.get(timeout=300) for _ in procs]
        for proc in procs:
            proc.join(60)
        seconds = max(r["finished"] for r in results) - released
        claimed = [k for r in results for k in r["keys"]]
        if len(claimed) != CLAIM_KEYS or len(set(claimed)) != CLAIM_KEYS:
            raise AssertionError(f"claims handed out {len(claimed)} keys, {len(set(claimed))} distinct")
        return {
            "value": CLAIM_KEYS / seconds,
            "seconds": seconds,
            "per_process": {r["owner"]: len(r["keys"]) for r in results},
            "claim_calls": sum(r["calls"] for r in results),
        }
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        with create_tracker(target, job=job) as tracker:  # type: ignore[attr-defined]
            tracker.delete_job()


SCENARIOS: dict[str, Callable[[str], dict[str, Any]]] = {
    "mark-100k": bench_mark,
    "done-keys-1m": bench_done_keys,
    "claim-100k-4proc": bench_claim,
}


# -- reporting -----------------------------------------------------------------------------
def report(scenario: str, backend: str, figures: dict[str, Any], postgres: dict[str, Any] | None) -> dict[str, Any]:
    """One JSON line: the figure, its bar, the ratio to the bar, and SQLite versus PostgreSQL."""
    bar, unit, kind = BARS[scenario]
    if backend == "sqlite":
        bar = bar / SQLITE_FACTOR if kind == "rate" else bar * SQLITE_FACTOR
    value = figures["value"]
    ratio = bar / value if kind == "time" else value / bar
    line: dict[str, Any] = {
        "scenario": scenario,
        "backend": backend,
        "value": round(value, 3) if kind == "time" else round(value),
        "unit": unit,
        "bar": f"{'<' if kind == 'time' else '>='} {bar:g} {unit}",
        "ratio": round(ratio, 2),
        "ok": ratio >= 1,
    }
    if backend == "sqlite" and postgres is not None:
        vs = value / postgres["value"]
        line["vs_postgres"] = round(vs, 2)
        line["within_2x_of_postgres"] = vs <= SQLITE_FACTOR if kind == "time" else vs >= 1 / SQLITE_FACTOR
    extra = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items() if k != "value"}
    if "runs" in extra:
        extra["runs"] = [round(r, 3) for r in figures["runs"]]
    line.update(extra)
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("RAHCP_BENCH_POSTGRES_DSN")
                        or os.environ.get("RAHCP_TEST_POSTGRES_DSN") or DEFAULT_DSN)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    all_ok = True
    with tempfile.TemporaryDirectory(prefix="rahcp-bench-") as tmp:
        for scenario in args.only.split(","):
            run = SCENARIOS[scenario]
            vacuum(args.dsn)
            postgres = run(args.dsn)
            line = report(scenario, "postgres", postgres, None)
            print(json.dumps(line), flush=True)
            sqlite = run(str(Path(tmp) / f"{scenario}.db"))
            line2 = report(scenario, "sqlite", sqlite, postgres)
            print(json.dumps(line2), flush=True)
            all_ok = all_ok and line["ok"] and line2["ok"]
    vacuum(args.dsn)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(json.dumps({"total_seconds": round(time.perf_counter() - started, 1), "all_ok": all_ok,
                      "cpus": os.cpu_count(), "load_avg_1m": load}), flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
