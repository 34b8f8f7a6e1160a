"""Four processes drain one 10,000-key job at once; one is killed with SIGKILL mid-batch.

Shown: every key is handed out exactly once (except the killed run's unfinished keys, which
come back once, and only after their lease); every key ends done exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rahcp_prefect.tracker import create_tracker

WORKER = Path(__file__).with_name("claim_worker.py")
TOTAL = 10_000
BATCH = 100
LEASE = 3.0
WORK = 0.05  # seconds a batch takes to "send": 100 batches over 3 runs add about 2 s


def _wait_for(path: Path, timeout: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        ended = [p.args[-1] for p in procs if p.poll() is not None]
        assert not ended, f"a worker ended before {path.name}: {ended}"
        assert time.monotonic() < deadline, f"timed out waiting for {path.name}"
        time.sleep(0.02)


def _events(logdir: Path) -> list[tuple[str, dict]]:
    events = []
    for log in sorted(logdir.glob("*.jsonl")):
        for line in log.read_text(encoding="utf-8").splitlines():
            events.append((log.stem, json.loads(line)))
    return events


def test_four_processes_drain_one_job_despite_a_kill(target: str, tracker_job: str, tmp_path: Path) -> None:
    keys = [f"scan/{i:05}.tif" for i in range(TOTAL)]
    with create_tracker(target, job=tracker_job) as setup:  # type: ignore[attr-defined]
        assert setup.register((k, i) for i, k in enumerate(keys)) == TOTAL

    logdir = tmp_path / "logs"
    logdir.mkdir()
    owners = ["victim", "run-1", "run-2", "run-3"]
    procs = []
    for owner in owners:
        config = {
            "target": target, "job": tracker_job, "owner": owner, "logdir": str(logdir),
            "total": TOTAL, "batch": BATCH, "lease": LEASE, "work": WORK, "timeout": 60, "victim": owner == "victim",
        }
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(config)], env=env))
    try:
        for owner in owners:
            _wait_for(logdir / f"{owner}.started", 60, procs)
        (logdir / "go").touch()  # the victim claims first, then the other three at once
        _wait_for(logdir / "victim-ready", 30, procs)
        procs[0].send_signal(signal.SIGKILL)
        assert procs[0].wait(10) == -signal.SIGKILL
        for proc in procs[1:]:
            assert proc.wait(90) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    events = _events(logdir)
    claims = [(owner, e) for owner, e in events if e["ev"] == "claim"]
    victim_claims = [e for owner, e in claims if owner == "victim"]
    assert len(victim_claims) == 1
    victim_batch = victim_claims[0]["keys"]
    victim_done = [k for owner, e in events if owner == "victim" and e["ev"] == "done" for k in e["keys"]]
    orphaned = set(victim_batch) - set(victim_done)
    assert len(orphaned) == BATCH // 2

    handed_out = Counter(k for _, e in claims for k in e["keys"])
    assert set(handed_out) == set(keys)
    twice = {k for k, n in handed_out.items() if n > 1}
    assert twice == orphaned, "only the killed run's unfinished keys may be handed out twice"
    assert max(handed_out.values()) == 2

    # the orphans came back only after the victim's lease ran out: the lease began no earlier than
    # the victim asked, and a retake is logged after its claim returned (on a busy machine the
    # victim's own log line can come a while after its lease began, so it is no bound)
    retaken_at = min(e["t"] for owner, e in claims if owner != "victim" and orphaned & set(e["keys"]))
    assert retaken_at >= victim_claims[0]["asked"] + LEASE - 0.05

    done = Counter(k for _, e in events if e["ev"] == "done" for k in e["keys"])
    assert set(done) == set(keys) and max(done.values()) == 1, "every key done exactly once"
    assert len({owner for owner, e in claims}) == 4, "all four processes claimed"

    with create_tracker(target, job=tracker_job) as check:  # type: ignore[attr-defined]
        assert check.summary() == {"pending": 0, "done": TOTAL, "error": 0}
        assert check.claim("late-run", 10, 60) == []
        check.delete_job()
