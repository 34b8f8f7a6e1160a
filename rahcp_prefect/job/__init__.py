"""The job: the unit of correctness, and every rule that makes a run of it safe (no Prefect here).

A job is a source and a destination with a record in the tracker (every file's size and
modification time as sent), a staging area, a lease and a state (open -> committing ->
committed, or rolled back). Its rules, each in one module:

- ``lease``: one single-mode run at a time (``on_busy``: wait or fail), or cooperative runs
  together, never both; taken before staging is touched, renewed, released, expired on death.
- ``staging``: where staging lives (one prefix for the job's life) and its check before a commit.
- ``claims``: how cooperative runs drain one job's manifest.
- ``commit``: the moves under the commit lock, resumable, then ``check``.
- ``check``: the final check; ``committed`` only once the final prefix holds every file.
- ``failure``: the failure policy (``rollback`` or ``keep``) and what it reports; an
  interruption (cancel, SIGTERM, SIGINT) is not a failure and always keeps staging.

The flows orchestrate these (and their Prefect tasks); the engine only moves bytes.
"""

from rahcp_prefect.job.check import NOT_IN_FINAL, FinalCheck, check_final, fail_final_check
from rahcp_prefect.job.claims import REGISTER_CHUNK, drain_job, register_manifest
from rahcp_prefect.job.commit import CommitResult, commit_job, commit_lock, resume_commit, wait_for_commit_lock
from rahcp_prefect.job.counts import COUNTERS, add_counts, new_counts
from rahcp_prefect.job.errors import (
    BulkTransferFailed,
    FinalCheckError,
    JobBusyError,
    JobError,
    JobLeaseLostError,
    JobMismatchError,
    JobModeError,
    StagingVerificationError,
)
from rahcp_prefect.job.failure import (
    FailureReport,
    StopCause,
    apply_failure_policy,
    interruption,
    keep_staging,
    kept_on_interruption,
    mark_rolled_back,
    roll_back,
)
from rahcp_prefect.job.lease import JobLease, hold_job, take_job
from rahcp_prefect.job.policy import OnBusy, OnFailure, lease_mode, parse_on_busy, parse_on_failure
from rahcp_prefect.job.staging import STAGING_ROOT, StagingPlan, listing, plan_staging, verify_staging
from rahcp_prefect.tracker.protocol import LeaseMode

__all__ = [
    "COUNTERS",
    "NOT_IN_FINAL",
    "REGISTER_CHUNK",
    "STAGING_ROOT",
    "BulkTransferFailed",
    "CommitResult",
    "FailureReport",
    "FinalCheck",
    "FinalCheckError",
    "JobBusyError",
    "JobError",
    "JobLease",
    "JobLeaseLostError",
    "JobMismatchError",
    "JobModeError",
    "LeaseMode",
    "OnBusy",
    "OnFailure",
    "StagingPlan",
    "StagingVerificationError",
    "StopCause",
    "add_counts",
    "apply_failure_policy",
    "check_final",
    "commit_job",
    "commit_lock",
    "drain_job",
    "fail_final_check",
    "hold_job",
    "interruption",
    "keep_staging",
    "kept_on_interruption",
    "lease_mode",
    "listing",
    "mark_rolled_back",
    "new_counts",
    "parse_on_busy",
    "parse_on_failure",
    "plan_staging",
    "register_manifest",
    "resume_commit",
    "roll_back",
    "take_job",
    "verify_staging",
]
