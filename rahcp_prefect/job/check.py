"""The final check: after a commit, the final prefix must hold every file of the job as recorded.

A run reports ``committed`` only after this check saw every file the tracker holds as done
under its final key with its recorded size, with an ETag that does not contradict its recorded
MD5, and (when the job writes one) a manifest that lists exactly the job's files with their
recorded SHA-256 and names only objects that are there. A file that is not there as recorded
(deleted meanwhile, a copy that never landed, other bytes) is recorded as failed, so the next
run of the job sends it again, and the job stays ``committing`` until a run's check passes.
Keep it the one place that decides what "committed" means.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from rahcp_prefect.bulk.scanner import iter_listing
from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.digests import bare_etag
from rahcp_prefect.job.errors import FinalCheckError
from rahcp_prefect.job.merge import outer_join
from rahcp_prefect.job.staging import Listed, StagingPlan, problems_text, settled
from rahcp_prefect.job.tagstream import ListingSpool
from rahcp_prefect.tracker.protocol import FileDigests, TrackerProtocol, TransferStatus

#: The error recorded on a file the final check did not find: the next run sends it again.
NOT_IN_FINAL = "not in the final prefix after the commit (seen by the final check)"


@dataclass
class FinalCheck:
    """What the final check saw: files checked, those missing, of the wrong size or with an ETag
    that is not the recorded MD5, and what is wrong with the manifest."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)  # final keys
    wrong_size: list[tuple[str, int, int]] = field(default_factory=list)  # (final key, found, recorded)
    wrong_md5: list[tuple[str, str, str]] = field(default_factory=list)  # (final key, ETag, recorded MD5)
    manifest: list[str] = field(default_factory=list)  # problems of the manifest (``check_manifest``)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.wrong_md5 or self.manifest)

    def failed_keys(self) -> list[str]:
        """The final keys whose files must be sent again."""
        return self.missing + [key for key, _, _ in self.wrong_size] + [key for key, _, _ in self.wrong_md5]

    def problems(self) -> list[str]:
        return (
            [f"{key}: missing" for key in self.missing]
            + [f"{key}: {found} bytes, {recorded} recorded" for key, found, recorded in self.wrong_size]
            + [f"{key}: ETag {etag}, MD5 {recorded} recorded" for key, etag, recorded in self.wrong_md5]
            + [f"manifest: {problem}" for problem in self.manifest]
        )


def etag_contradicts(etag: str, md5: str | None) -> bool:
    """Whether an object's ETag proves it is not the bytes whose MD5 was recorded.

    Only ETags of the recorded form say so: a plain MD5 for a single-part upload, the composite
    ``<md5>-N`` for a multipart one. A store that rewrote the ETag on the copy (another form)
    proves nothing either way; the size and the manifest still apply.
    """
    if not md5 or not etag:
        return False
    found = bare_etag(etag)
    if ("-" in found) != ("-" in md5):
        return False
    return found != md5.lower()


async def check_final(
    client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan, grace: float = 0.0, spool: ListingSpool | None = None
) -> FinalCheck:
    """List the final prefix and compare it with every file the tracker holds as done: each
    must be there with its recorded size, and its ETag must not contradict the recorded MD5. A
    listing that lacks files is read again for up to ``grace`` seconds (a listing cache,
    ``staging.settled``). The listing and the tracker's records (``iter_done_digests``) are
    walked in step in key order, one page of each in memory; ``spool`` keeps the listing the
    verdict is based on on local disk (the commit's record walks it again)."""
    return await settled(lambda: _streamed(client, tracker, plan, spool), _lacking, grace)


def _lacking(check: FinalCheck) -> bool:
    return bool(check.missing or check.wrong_size or check.wrong_md5)


async def _streamed(client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan, spool: ListingSpool | None) -> FinalCheck:
    """The final check as a merge of the final listing and the done records, in key order."""
    check = FinalCheck()
    if spool is not None:
        spool.reset()

    async def listed() -> AsyncIterator[tuple[str, Listed]]:
        async for key, size, etag in iter_listing(client.s3, plan.bucket, plan.final_prefix):
            if spool is not None:
                spool.add(key, str(etag or ""))
            yield key, Listed(int(size), str(etag or ""))

    records = ((plan.final_key(key), record) for key, record in tracker.iter_done_digests(plan.staging_prefix))
    async for key, found, record in outer_join(listed(), records):
        if record is not None:
            _judge(check, key, found, record)
    return check


def _judge(check: FinalCheck, key: str, found: Listed | None, record: FileDigests) -> None:
    """One recorded file against what the final prefix holds under ``key``."""
    check.checked += 1
    if found is None:
        check.missing.append(key)
    elif found.size != record.size:
        check.wrong_size.append((key, found.size, record.size))
    elif etag_contradicts(found.etag, record.md5):
        check.wrong_md5.append((key, bare_etag(found.etag), str(record.md5)))


def fail_final_check(tracker: TrackerProtocol, plan: StagingPlan, check: FinalCheck) -> FinalCheckError:
    """Record the files the check did not find as failed (the next run sends them again) and
    return the error that names them."""
    sizes = tracker.done_entries()
    for key in check.failed_keys():
        staged_key = plan.staging_prefix + key[len(plan.final_prefix) :]
        tracker.mark(staged_key, sizes.get(staged_key, 0), TransferStatus.error, NOT_IN_FINAL)
    tracker.flush()
    problems = check.problems()
    return FinalCheckError(
        f"final check failed: {plan.bucket}/{plan.final_prefix} does not hold the {check.checked} file(s) of "
        f"job {tracker.job!r} as recorded, {len(problems)} problem(s) ({problems_text(problems)}); the job "
        "stays 'committing' and its next run sends the files named again and rewrites the manifest"
    )
