"""Every kind of namespace HCP runs, met by the job (no Prefect), on the HCP-faithful emulator:
what the bucket (objects, versions, retained objects, staging) and the tracker hold after a
first ingest, a rerun with changed files, a rolled back run, cleanup-staging and a kill -9
between the delete and the copy of a safe replace.

Configurations: versioned; no versioning with the overwrite option off (HCP's default);
overwrite on; a default retention on the target (staging in a ``staging_bucket``; without it
the run refuses before uploading); one archived object on hold.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.client import HCPClient, RetentionError
from rahcp_prefect.job import apply_failure_policy, commit_job, plan_staging, resume_commit, verify_staging
from rahcp_prefect.job.commit import RETAINED, UNCHANGED, CommitResult, move_staged
from rahcp_prefect.job.leftovers import ORPHANED_STAGING, find_leftovers, remove_leftover
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME
from rahcp_prefect.job.namespace import StagingNotAllowedError, check_namespaces
from rahcp_prefect.job.retained import Waiting
from rahcp_prefect.testing.fixtures import TEST_PASSWORD, TEST_TENANT, TEST_USERNAME
from rahcp_prefect.tracker import JobState, SqliteTracker, TransferStatus

FINAL = "final/"
CHILD = Path(__file__).with_name("replace_child.py")
FIRST = {"a.txt": b"first a", "b.txt": b"first b", "sub/c.txt": b"first c"}
CHANGED = {"a.txt": b"second a, longer", "b.txt": b"second b"}

CONFIGS = ["versioned", "no-overwrite", "overwrite", "retention", "held"]
SETTINGS: dict[str, dict[str, Any]] = {
    "versioned": {"versioning": True},
    "no-overwrite": {"versioning": False, "overwrite": False},  # HCP's default
    "overwrite": {"overwrite": True},
    "retention": {"retention": "-1"},  # deletion prohibited: everything stored there stays
    "held": {"versioning": False, "overwrite": False},
}


@pytest.fixture
def staging_bucket(hcp_staging_bucket: str) -> str:
    return hcp_staging_bucket


@dataclass
class Job:
    """One upload job driven step by step as a run drives it: stage, verify, commit."""

    hcp_mode: Any
    client: HCPClient
    tracker: Any
    bucket: str
    staging_bucket: str | None

    def plan(self, run: str) -> Any:
        return plan_staging(self.tracker, self.bucket, FINAL, run, self.staging_bucket)

    async def stage(self, run: str, files: dict[str, bytes]) -> Any:
        """Check the namespaces, open the job for ``run`` and stage ``files`` as the engine does."""
        await check_namespaces(self.client, self.bucket, self.staging_bucket)
        plan = self.plan(run)
        info = self.tracker.job_info()
        if info is not None and info.state != JobState.open:
            self.tracker.update_job(state=JobState.open)
        for name, body in files.items():
            await self.client.s3.upload(plan.staged_in, plan.staging_prefix + name, body)
            self.tracker.mark(
                plan.staging_prefix + name, len(body), TransferStatus.done,
                sha256=hashlib.sha256(body).hexdigest(), md5=hashlib.md5(body).hexdigest(),
            )
        self.tracker.flush()
        return plan

    async def run(self, run: str, files: dict[str, bytes]) -> CommitResult:
        plan = await self.stage(run, files)
        await verify_staging(self.client, self.tracker, plan)
        result = await commit_job(self.tracker, plan, run, 30, partial(move_staged, self.client, plan, 4), self.client)
        assert result is not None
        return result

    def final(self) -> dict[str, bytes]:
        """The final prefix, the job's tag files (manifest, times) aside: relative path -> bytes."""
        found = _objects(self.hcp_mode, self.bucket, FINAL)
        return {key[len(FINAL):]: body for key, body in found.items() if key.rpartition("/")[2] not in (MANIFEST_NAME, MTIMES_NAME)}

    def staged(self, plan: Any) -> list[str]:
        return sorted(_objects(self.hcp_mode, plan.staged_in, plan.staging_prefix))

    def versions(self, name: str) -> int:
        answer = self.hcp_mode.s3.list_object_versions(Bucket=self.bucket, Prefix=FINAL + name)
        return sum(1 for v in answer.get("Versions", []) if v["Key"] == FINAL + name)


def _objects(hcp_mode: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for page in hcp_mode.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = hcp_mode.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


@pytest.fixture(params=CONFIGS)
def job(request: pytest.FixtureRequest, hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, open_tracker: Any) -> Job:
    """A job on a target namespace configured as ``request.param`` says."""
    config = request.param
    hcp_mode.configure_namespace(hcp_bucket, **SETTINGS[config])
    staging = request.getfixturevalue("staging_bucket") if config == "retention" else None
    made = Job(hcp_mode, hcp_client, open_tracker(), hcp_bucket, staging)
    made.config = config  # type: ignore[attr-defined]
    return made


def _config(job: Job) -> str:
    return job.config  # type: ignore[attr-defined,no-any-return]


@pytest.mark.timeout(120)
async def test_a_first_ingest_then_a_rerun_with_changed_files_commits_as_the_namespace_allows(job: Job) -> None:
    config = _config(job)
    first = await job.run("run-1", FIRST)
    assert first.moved == 3 and first.retained == [] and first.staging_kept == 0
    assert job.final() == FIRST
    assert job.tracker.job_info().state == JobState.committed
    if config == "held":
        job.hcp_mode.set_hold(job.bucket, FINAL + "a.txt")

    second = await job.run("run-2", CHANGED)
    plan = job.plan("run-3")
    assert job.staged(plan) == [], "staging is empty after each commit"
    assert job.tracker.job_info().state == JobState.committed, "a retained file never fails the night"
    final = job.final()
    entries = job.tracker.entries()
    a_entry = entries[plan.staging_prefix + "a.txt"]
    if config in ("versioned", "no-overwrite", "overwrite"):
        assert final == {**FIRST, **CHANGED} and second.retained == []
        assert a_entry.status == TransferStatus.done
    if config == "versioned":
        assert second.replaced == 0 and job.versions("a.txt") == 2 and job.versions("sub/c.txt") == 1
    if config == "no-overwrite":
        assert second.replaced == 2, "each changed file by a safe replace"
        assert job.versions("a.txt") == 1
    if config == "overwrite":
        assert second.replaced == 0 and job.versions("a.txt") == 1
    if config == "retention":
        # Every archived object is retained: the changed files are not replaced, counted and named.
        assert final == FIRST
        assert sorted(second.retained) == [FINAL + "a.txt", FINAL + "b.txt"]
        assert a_entry.status == TransferStatus.error and (plan.staging_prefix + "a.txt", RETAINED) in job.tracker.error_details()
        with pytest.raises(RetentionError, match="retention or on hold"):
            await job.client.s3.delete(job.bucket, FINAL + "sub/c.txt")
        assert second.extra == {"manifest": 3, "record": UNCHANGED}, "retained files keep their recorded lines"
        assert job.staged(plan) == [] and plan.staged_in == job.staging_bucket
    if config == "held":
        assert final == {**FIRST, "b.txt": CHANGED["b.txt"]}
        assert second.retained == [FINAL + "a.txt"] and second.replaced == 1
        assert a_entry.status == TransferStatus.error and (plan.staging_prefix + "a.txt", RETAINED) in job.tracker.error_details()
        assert entries[plan.staging_prefix + "b.txt"].status == TransferStatus.done
        # Released, the next run replaces it: the file was recorded to be sent again.
        job.hcp_mode.set_hold(job.bucket, FINAL + "a.txt", False)
        third = await job.run("run-3", {"a.txt": CHANGED["a.txt"]})
        assert third.retained == [] and job.final() == {**FIRST, **CHANGED}


@pytest.mark.timeout(120)
async def test_a_failed_run_rolls_back_its_staging_and_leaves_the_archive_as_it_was(job: Job) -> None:
    await job.run("run-1", FIRST)
    if _config(job) == "held":
        job.hcp_mode.set_hold(job.bucket, FINAL + "a.txt")
    plan = await job.stage("run-2", {**CHANGED, "new.txt": b"new"})
    assert len(job.staged(plan)) == 3
    report = await apply_failure_policy("rollback", job.client, job.tracker, plan)
    assert report.staging == "deleted" and report.staged == 3
    assert job.staged(plan) == [] and job.final() == FIRST
    assert job.tracker.job_info().state == JobState.rolled_back
    entries = job.tracker.entries()
    assert plan.staging_prefix + "new.txt" not in entries, "what was staged is forgotten: sent again next run"
    assert entries[plan.staging_prefix + "sub/c.txt"].status == TransferStatus.done, "committed files stay recorded"


@pytest.mark.timeout(120)
async def test_cleanup_staging_removes_what_a_lost_tracker_left_and_spares_the_archive(job: Job) -> None:
    await job.run("run-1", FIRST)
    # A run that staged and lost its tracker (another job, never recorded anywhere).
    orphan = f".rahcp-staging/lost-{uuid.uuid4().hex[:8]}/"
    staged_in = job.staging_bucket or job.bucket
    for name, body in CHANGED.items():
        await job.client.s3.upload(staged_in, orphan + name, body)
    live = {job.plan("run-1").staging_prefix}
    found = await find_leftovers(job.client, staged_in, live, live, datetime.now(timezone.utc) + timedelta(seconds=5))
    assert [(f.kind, f.where, f.objects) for f in found] == [(ORPHANED_STAGING, orphan, 2)]
    retained: list[str] = []
    assert await remove_leftover(job.client, found[0], retained) == 2 and retained == []
    assert _objects(job.hcp_mode, staged_in, orphan) == {} and job.final() == FIRST


async def test_a_target_with_a_default_retention_refuses_before_uploading_without_a_staging_bucket(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, open_tracker: Any
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, retention="+1y")
    with pytest.raises(StagingNotAllowedError, match=r"default retention \(\+1y\).*'staging_bucket' setting"):
        await check_namespaces(hcp_client, hcp_bucket, None)
    assert _objects(hcp_mode, hcp_bucket, "") == {}, "nothing was uploaded"


async def test_a_staging_bucket_that_retains_is_refused_too(
    hcp_mode: Any, hcp_bucket: str, staging_bucket: str, hcp_client: HCPClient
) -> None:
    hcp_mode.configure_namespace(staging_bucket, retention="+1d")
    with pytest.raises(StagingNotAllowedError, match=rf"staging_bucket '{staging_bucket}' has a default retention"):
        await check_namespaces(hcp_client, hcp_bucket, staging_bucket)


@pytest.mark.timeout(120)
async def test_a_committed_job_whose_staging_cannot_be_deleted_is_committed_and_later_runs_pass(
    hcp_mode: Any, hcp_bucket: str, hcp_credentials: dict[str, Any], open_tracker: Any
) -> None:
    """The namespace retains everything and MAPI cannot tell (a client without a tenant): the
    commit learns it from the refused staging delete; the job is committed all the same, the
    result says how many staging objects stay, later runs and cleanup-staging do not fail."""
    hcp_mode.configure_namespace(hcp_bucket, retention="-1")
    untenanted = {**hcp_credentials, "tenant": None}
    async with HCPClient(**untenanted, retry_base_delay=0.01, max_retries=2) as client:
        job = Job(hcp_mode, client, open_tracker(), hcp_bucket, None)
        first = await job.run("run-1", FIRST)
        assert first.moved == 3 and first.staging_kept == 3
        assert job.final() == FIRST and job.tracker.job_info().state == JobState.committed
        assert "retention" in first.fields()["staging_kept_why"]
        again = await job.run("run-2", {})
        assert again.staging_kept == 3 and again.retained == [], "the staged copies are in place: no refusal"
        assert job.tracker.job_info().state == JobState.committed and job.final() == FIRST
        plan = job.plan("run-3")
        found = await find_leftovers(client, hcp_bucket, set(), set(), datetime.now(timezone.utc) + timedelta(seconds=5))
        assert [f.where for f in found] == [plan.staging_prefix]
        retained: list[str] = []
        assert await remove_leftover(client, found[0], retained) == 0
        assert sorted(retained) == sorted(plan.staging_prefix + name for name in FIRST), "reported, not failed"


@pytest.mark.timeout(120)
async def test_a_commit_resumed_after_a_crash_records_a_retained_file_with_its_next_try_as_a_commit_does(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, staging_bucket: str, open_tracker: Any
) -> None:
    """A run that died after the job turned ``committing`` leaves its moves to the next run
    (``resume_commit``). A changed file whose archived object is retained must then wait for its
    retention's end there too, not be sent again the next night: the same record as a commit's."""
    hcp_mode.configure_namespace(hcp_bucket, retention="+1y")
    resumed = Job(hcp_mode, hcp_client, open_tracker(), hcp_bucket, staging_bucket)
    await resumed.run("run-1", FIRST)
    plan = await resumed.stage("run-2", CHANGED)
    resumed.tracker.update_job(state=JobState.committing)  # run-2 died here, before its first move

    await resume_commit(
        resumed.tracker, "run-3", 2.0, partial(move_staged, hcp_client, plan, 4), hcp_client, plan, "+1y"
    )
    after = dict(resumed.tracker.retained_files())
    assert sorted(after) == [plan.staging_prefix + name for name in sorted(CHANGED)]
    year = 365 * 86400
    for found in after.values():
        assert found.step == 1 and found.until is not None and found.next_try == found.until
        assert year - 60 < found.until - time.time() <= year + 86400, "at the end of its year of retention"
    assert Waiting.of(resumed.tracker).waits(plan.staging_prefix + "a.txt"), "the next sync leaves it out"
    assert resumed.final() == FIRST, "the first bytes stay"

    # The same files met by a normal commit (another job over the same archived objects): the same record.
    normal = Job(hcp_mode, hcp_client, open_tracker(f"normal-{uuid.uuid4().hex[:8]}"), hcp_bucket, staging_bucket)
    other = await normal.stage("run-4", CHANGED)
    result = await commit_job(
        normal.tracker, other, "run-4", 30, partial(move_staged, hcp_client, other, 4), hcp_client, retention="+1y"
    )
    assert result is not None and sorted(result.retained) == [FINAL + name for name in sorted(CHANGED)]
    committed = {other.final_key(key): found for key, found in normal.tracker.retained_files()}
    assert committed == {plan.final_key(key): found for key, found in after.items()}


# -- kill -9 between the delete and the copy of a safe replace -------------------------------------


def _start_child(hcp_mode: Any, bucket: str, db: Path, job: str, run: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(CHILD), hcp_mode.base_url, bucket, str(db), job, run, TEST_USERNAME, TEST_PASSWORD, TEST_TENANT],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _exists(hcp_mode: Any, bucket: str, key: str) -> bool:
    try:
        hcp_mode.s3.head_object(Bucket=bucket, Key=key)
    except Exception:
        return False
    return True


@pytest.mark.timeout(180)
@pytest.mark.parametrize("config", ["no-overwrite", "held"])
async def test_a_run_killed_between_the_delete_and_the_copy_of_a_safe_replace_is_finished_by_the_next(
    config: str, hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, tmp_path: Path
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, **SETTINGS[config])
    db, name = tmp_path / "tracker.db", f"kill-{uuid.uuid4().hex[:8]}"
    job = Job(hcp_mode, hcp_client, SqliteTracker(str(db), job=name), hcp_bucket, None)
    await job.run("run-1", FIRST)
    if config == "held":
        hcp_mode.set_hold(hcp_bucket, FINAL + "sub/c.txt")  # held, unchanged: the rest replaces as usual
    plan = await job.stage("run-2", CHANGED)
    job.tracker.close()
    # Every copy onto final/a.txt waits 3 s before the API handles it: the refused first copy,
    # then (after the delete) the replacing one. The child is killed once the old object is gone.
    hcp_mode.faults.add("api", method="POST", path=r"/objects/final/a\.txt/copy$", delay=3.0, count=None)
    child = _start_child(hcp_mode, hcp_bucket, db, name, "run-2")
    try:
        deadline = time.monotonic() + 60
        while _exists(hcp_mode, hcp_bucket, FINAL + "a.txt"):
            assert child.poll() is None, f"the child ended early: {child.stderr.read() if child.stderr else ''}"
            assert time.monotonic() < deadline, "the replace never deleted the old object"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    hcp_mode.faults.clear()
    assert not _exists(hcp_mode, hcp_bucket, FINAL + "a.txt"), "killed between the delete and the copy"
    assert _exists(hcp_mode, hcp_bucket, plan.staging_prefix + "a.txt"), "the staged copy stays: nothing lost"

    tracker = SqliteTracker(str(db), job=name)
    try:
        assert tracker.job_info().state == JobState.committing
        move = partial(move_staged, hcp_client, plan, 4)
        await resume_commit(tracker, "run-3", 2.0, move, hcp_client, plan)
        result = await commit_job(tracker, plan, "run-3", 2.0, move, hcp_client)
        assert result is not None and result.check.ok
        assert tracker.job_info().state == JobState.committed
        assert {k: e.status for k, e in tracker.entries().items()} == {
            plan.staging_prefix + n: TransferStatus.done for n in FIRST
        }
    finally:
        tracker.close()
    job.tracker = None
    assert job.final() == {**FIRST, **CHANGED} and job.versions("a.txt") == 1
    assert job.staged(plan) == []


# -- a backend that caches listings ----------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_the_staging_check_reads_a_cached_listing_again_until_it_shows_fresh_objects(
    hcp_emulator: Any, hcp_bucket: str, open_tracker: Any
) -> None:
    """The reference backend with Redis serves a listing cached before presigned PUTs (which
    invalidate nothing): the staging check reads again, with backoff, for up to the setting's
    seconds before it calls a file missing."""
    from rahcp_prefect.job.errors import StagingVerificationError
    from rahcp_prefect.testing import HCPEmulator

    with HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, cache_ttl=2.0) as cached:
        async with HCPClient(endpoint=cached.base_url, username=TEST_USERNAME, password=TEST_PASSWORD) as client:
            tracker = open_tracker()
            job = Job(cached, client, tracker, hcp_bucket, None)
            plan = job.plan("run-1")
            assert (await client.s3.list_objects(hcp_bucket, plan.staging_prefix))["objects"] == []  # now cached
            await job.stage("run-1", FIRST)
            with pytest.raises(StagingVerificationError, match="3 key.*neither staged nor committed"):
                await verify_staging(client, tracker, plan)  # no grace: the cached, empty listing
            started = time.monotonic()
            assert await verify_staging(client, tracker, plan, grace=6.0) == 3
            assert time.monotonic() - started < 6.0
