"""The base class of both backends: the roles of a tracker, each written once, composed.

A backend subclasses ``BufferedTracker`` and gives its placeholder (``_PARAM``), its clock
(``_NOW``, ``_JOB_COLUMNS``), its connections (``_flushed``, ``_write_transaction``), ``_write``
(store a batch of marks), ``_stamp``, and the statements that differ by dialect (register,
claims, job state, commit lock). The roles:

- ``marks``: the mark buffer and the tracker's lifecycle;
- ``queries``: what the tracker answers about its job;
- ``leases``: claims, the commit lock and the job lease;
- ``parts``: the part store of multipart uploads;
- ``deletes``: forgetting keys and jobs;
- ``retained``: the record of retained files.
"""

from __future__ import annotations

from typing import Any

from rahcp_prefect.tracker.deletes import Deletes
from rahcp_prefect.tracker.leases import Leases
from rahcp_prefect.tracker.parts import PartRecords
from rahcp_prefect.tracker.protocol import JobState
from rahcp_prefect.tracker.queries import Queries
from rahcp_prefect.tracker.retained import RetainedStore


class BufferedTracker(Queries, Leases, PartRecords, Deletes, RetainedStore):
    """Every role shared by the backends; what is left is the backend's (see the module)."""

    def _job_fields(
        self, state: JobState | None, bucket: str | None, staging_prefix: str | None, final_prefix: str | None
    ) -> dict[str, Any]:
        """The named parameters of a backend's ``update_job`` upsert: ``job``, ``state`` (its
        stored value), ``bucket``, ``staging`` and ``final`` (None: keep the stored value)."""
        return {
            "job": self.job,
            "state": JobState(state).value if state is not None else None,
            "bucket": bucket,
            "staging": staging_prefix,
            "final": final_prefix,
        }
