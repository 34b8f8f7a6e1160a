"""One claiming process for test_concurrency (run as a script, killed with SIGKILL by the test).

Usage: python claim_worker.py CONFIG_JSON. Waits for the ``go`` file, then claims batches,
logging every claim and every committed ``done`` to ``<logdir>/<owner>.jsonl``. The victim
claims first (SQLite's lock is not fair: on a busy machine the other three could drain the
job before the victim's first claim gets through), writes ``victim-claimed`` so the others
start, commits half of its batch, writes ``victim-ready`` and sleeps until it is killed.
Every batch takes ``work`` seconds to "send" before its keys are marked done, as a real batch
does: a process that claims again at once would otherwise hold SQLite's unfair write lock
back to back and could drain the job before a waiting process's first claim got through.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rahcp_prefect.tracker import TransferStatus, create_tracker


def main(config: dict) -> None:
    logdir = Path(config["logdir"])
    owner, total, lease = config["owner"], config["total"], config["lease"]
    tracker = create_tracker(config["target"], job=config["job"], flush_every=10_000)
    log = open(logdir / f"{owner}.jsonl", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    (logdir / f"{owner}.started").touch()
    start_signal = logdir / ("go" if config.get("victim") else "victim-claimed")
    while not start_signal.exists():
        time.sleep(0.005)
    deadline = time.monotonic() + config["timeout"]
    while time.monotonic() < deadline:
        asked = time.time()  # the lease starts no earlier than this
        batch = tracker.claim(owner, config["batch"], lease)
        if not batch:
            if tracker.summary()["done"] == total:
                break
            time.sleep(0.05)
            continue
        log.write(json.dumps({"ev": "claim", "asked": asked, "t": time.time(), "keys": [k for k, _ in batch]}) + "\n")
        if config.get("victim"):
            (logdir / "victim-claimed").touch()
            half = batch[: len(batch) // 2]
            for key, size in half:
                tracker.mark(key, size, TransferStatus.done)
            tracker.flush()
            log.write(json.dumps({"ev": "done", "keys": [k for k, _ in half]}) + "\n")
            (logdir / "victim-ready").touch()
            time.sleep(3600)  # mid-batch: the test kills us here with SIGKILL
        time.sleep(config.get("work", 0.0))  # sending the batch, outside any transaction
        for key, size in batch:
            tracker.mark(key, size, TransferStatus.done)
        tracker.flush()
        log.write(json.dumps({"ev": "done", "keys": [k for k, _ in batch]}) + "\n")
    tracker.close()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
