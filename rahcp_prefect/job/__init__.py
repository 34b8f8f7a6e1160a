"""The job: the unit of correctness, and every rule that makes a run of it safe (no Prefect here).

A job is a source and a destination with a record in the tracker (every file's size and
modification time as sent), a staging area, a lease and a state (open -> committing ->
committed, or rolled back).

Where the job lives, for a newcomer: start at ``run.JobRun``. One ``JobRun`` is one run of a
job, upload or download alike: it owns the run's one client (one login), the tracker, the
lease, the typed totals (``RunTotals``) and the steps

    lease -> open staging -> plan + transfer (batches) -> verify -> commit -> final check

with the failure policy applied in one place (``JobRun._fail``). Single and cooperative runs
are two lease modes of the same steps (``transfer`` or ``drain``). What differs by direction is
a ``Staging``: ``upload.UploadStaging`` (a remote staging prefix, committed to the final prefix)
or ``download.DownloadStaging`` (a local staging folder, ``folder.promote_staging`` into the
destination). The transfer of a batch is handed in (``BatchRunner``): the flows in
``rahcp_prefect.flows`` pass their Prefect tasks and only wire Prefect around the run. To stop
a run between batches set ``JobRun.stop``: no batch starts after it, staging is kept and the
lease is released on the way out.

The rules the steps call, each in one module:

- ``lease``: one single-mode run at a time (``on_busy``: wait or fail), or cooperative runs
  together, never both; taken before staging is touched, renewed, released, expired on death.
- ``staging``: where an upload's staging lives (one prefix for the job's life) and its check
  before a commit; ``folder``: a download's staging folder and its promotion.
- ``claims``: how cooperative runs drain one job's manifest.
- ``commit``: the moves under the commit lock, resumable, then ``check``.
- ``check``: the final check; ``committed`` only once the final prefix holds every file.
- ``failure``: the failure policy (``rollback`` or ``keep``) and what it reports; an
  interruption (cancel, SIGTERM, SIGINT) is not a failure and always keeps staging.
- ``manifest``: the job's manifest, written last on commit and read back by downloads.

The engine (``rahcp_prefect.bulk``) only moves bytes: it sends what the run decided to send.
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
from rahcp_prefect.job.run import (
    Batch,
    BatchRunner,
    Failure,
    JobRun,
    RunStopped,
    RunTotals,
    RunView,
    Selection,
    Staging,
    first_errors,
)
from rahcp_prefect.job.folder import promote_staging, staging_dir_for
from rahcp_prefect.job.upload import UploadStaging
from rahcp_prefect.job.download import DownloadStaging
from rahcp_prefect.tracker.protocol import LeaseMode

__all__ = [
    "Batch",
    "BatchRunner",
    "DownloadStaging",
    "Failure",
    "JobRun",
    "RunStopped",
    "RunTotals",
    "Selection",
    "RunView",
    "Staging",
    "UploadStaging",
    "first_errors",
    "promote_staging",
    "staging_dir_for",
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
