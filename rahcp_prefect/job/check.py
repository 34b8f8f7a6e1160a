"""The final check: after a commit, the final prefix must hold every file of the job as recorded.

A run reports ``committed`` only after this check saw every file the tracker holds as done
under its final key with its recorded size. A file that is not there (deleted meanwhile, a
copy that never landed) is recorded as failed, so the next run of the job sends it again, and
the job stays ``committing`` until a run's check passes. Issue "Fixity" extends the same check
with checksums and the manifest; keep it the one place that decides what "committed" means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.errors import FinalCheckError
from rahcp_prefect.job.staging import StagingPlan, listing, problems_text
from rahcp_prefect.tracker.protocol import TrackerProtocol, TransferStatus

#: The error recorded on a file the final check did not find: the next run sends it again.
NOT_IN_FINAL = "not in the final prefix after the commit (seen by the final check)"


@dataclass
class FinalCheck:
    """What the final check saw: files checked, and those missing or of the wrong size."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)  # final keys
    wrong_size: list[tuple[str, int, int]] = field(default_factory=list)  # (final key, found, recorded)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong_size

    def problems(self) -> list[str]:
        return [f"{key}: missing" for key in self.missing] + [
            f"{key}: {found} bytes, {recorded} recorded" for key, found, recorded in self.wrong_size
        ]


async def check_final(client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan) -> FinalCheck:
    """List the final prefix and compare it with every file the tracker holds as done."""
    final = await listing(client, plan.bucket, plan.final_prefix)
    check = FinalCheck()
    for staged_key, size in tracker.done_entries().items():
        if not staged_key.startswith(plan.staging_prefix):
            continue
        check.checked += 1
        key = plan.final_key(staged_key)
        found = final.get(key)
        if found is None:
            check.missing.append(key)
        elif found != size:
            check.wrong_size.append((key, found, size))
    return check


def fail_final_check(tracker: TrackerProtocol, plan: StagingPlan, check: FinalCheck) -> FinalCheckError:
    """Record the files the check did not find as failed (the next run sends them again) and
    return the error that names them."""
    sizes = tracker.done_entries()
    for key in check.missing + [key for key, _found, _recorded in check.wrong_size]:
        staged_key = plan.staging_prefix + key[len(plan.final_prefix) :]
        tracker.mark(staged_key, sizes.get(staged_key, 0), TransferStatus.error, NOT_IN_FINAL)
    tracker.commit()
    problems = check.problems()
    return FinalCheckError(
        f"final check failed: {len(problems)} of {check.checked} file(s) of job {tracker.job!r} are not in "
        f"{plan.bucket}/{plan.final_prefix} as recorded ({problems_text(problems)}); the job stays "
        "'committing' and its next run sends them again"
    )
