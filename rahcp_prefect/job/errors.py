"""Why a run of a job stopped: one small hierarchy, each message naming the job and what to do."""

from __future__ import annotations

from rahcp_prefect.errors import RahcpError


class JobError(RahcpError, RuntimeError):
    """A rule of the job stopped this run (nothing was left half-done by it)."""


class JobMismatchError(JobError, ValueError):
    """A job name was reused for another bucket or prefix."""


class JobBusyError(JobError):
    """Another single-mode run holds the job, and this run was told not to wait (``on_busy="fail"``)."""


class JobModeError(JobError, ValueError):
    """Single-mode and cooperative runs of one job cannot run at the same time."""


class JobLeaseLostError(JobError):
    """This run stopped renewing its job lease in time and another run took the job over."""


class StagingVerificationError(JobError):
    """Staging does not hold exactly what the tracker says was uploaded."""


class FinalCheckError(JobError):
    """After the commit, the final prefix does not hold every file of the job as recorded."""


class BulkTransferFailed(JobError):
    """Some files failed; the run applied its failure policy (rollback or keep) and says which.

    ``result`` holds the run's result fields (counters, ``staging: "kept" | "deleted"``...),
    as the run would have returned them.
    """

    def __init__(self, message: str, result: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.result = dict(result or {})


class RunStopped(JobError):
    """The run was asked to stop (``JobRun.stop``): an interruption, staging and the done marks kept."""
