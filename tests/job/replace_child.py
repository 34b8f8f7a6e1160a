"""A commit in its own process, to be killed with SIGKILL by test_namespaces.py.

    python replace_child.py API BUCKET TRACKER_DB JOB RUN USER PASSWORD TENANT

Commits the job's staging to ``final/`` as an upload run does (``move_staged``: a safe replace
where the namespace refuses overwrites) under a 2 s commit lease, so the parent's next run
takes the lock soon after the kill.
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job import commit_job, plan_staging
from rahcp_prefect.job.commit import move_staged
from rahcp_prefect.tracker import SqliteTracker


async def main(api: str, bucket: str, db: str, job: str, run: str, user: str, password: str, tenant: str) -> None:
    tracker = SqliteTracker(db, job=job)
    plan = plan_staging(tracker, bucket, "final/", run)
    async with HCPClient(endpoint=api, username=user, password=password, tenant=tenant) as client:
        await commit_job(tracker, plan, run, 2.0, partial(move_staged, client, plan, 4), client)
    tracker.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:9]))
