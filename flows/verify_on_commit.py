"""An event-driven follow-up: audit a prefix each time a bulk upload commits to it.

``bulk-upload`` emits ``rahcp.upload.committed`` (``rahcp_prefect.events``) with the job as its
resource, labelled ``rahcp.bucket`` and ``rahcp.prefix``; ``on_commit`` is a deployment trigger
that starts ``verify-on-commit`` with those two labels as its parameters. A rolled-back upload
emits no ``committed`` event, so the audit only ever runs on complete data. From a checkout:

    python flows/verify_on_commit.py     # serves the deployment with its trigger

or ``verify_on_commit.deploy(..., triggers=[on_commit("scans/")])`` onto a work pool.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.events import DeploymentEventTrigger

from rahcp_prefect.events import UPLOAD_COMMITTED
from rahcp_prefect.flows.verify import bulk_verify

PARAMETERS_FROM_THE_EVENT = {
    "bucket": "{{ event.resource['rahcp.bucket'] }}",
    "prefix": "{{ event.resource['rahcp.prefix'] }}",
}


def on_commit(prefix: str | None = None) -> DeploymentEventTrigger:
    """Fire once per ``rahcp.upload.committed`` event (of ``prefix`` only, when given)."""
    match = {"prefect.resource.id": "rahcp.job.*"}
    if prefix is not None:
        match["rahcp.prefix"] = prefix
    return DeploymentEventTrigger(expect={UPLOAD_COMMITTED}, match=match, parameters=PARAMETERS_FROM_THE_EVENT)


@flow(name="verify-on-commit", log_prints=True)
async def verify_on_commit(bucket: str, prefix: str, credentials_block: str = "hcp") -> dict[str, Any]:
    """Re-read and hash every object of the committed ``bucket/prefix`` against its manifest."""
    audit = await bulk_verify(bucket=bucket, prefix=prefix, credentials_block=credentials_block, against="manifest")
    print(f"{bucket}/{prefix}: {audit['matches']} of {audit['expected']} objects match the manifest")
    return audit


if __name__ == "__main__":
    verify_on_commit.serve(name="after-each-commit", triggers=[on_commit()])
