"""Where a job may stage, decided from what the target namespace does, before any byte moves.

A namespace with a default retention keeps every object stored in it for that time, staging
included: staged objects could never be deleted (and a changed file never staged again under
the same key). Such a target needs staging in another namespace (the ``staging_bucket``
setting); the commit then copies across namespaces. Without it the run refuses before it
uploads anything. Overwrites need no decision here: the commit's placement (``job.commit``)
copies over where the namespace allows it and replaces safely where it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.namespace import NamespaceRules, namespace_rules
from rahcp_prefect.job.errors import JobError


class StagingNotAllowedError(JobError):
    """The job cannot stage where it would: the target (or the staging bucket) retains objects."""


@dataclass(frozen=True)
class Namespaces:
    """What the target namespace does, and the staging namespace's rules when it is another."""

    target: NamespaceRules
    staging: NamespaceRules | None = None

    def describe(self) -> str:
        text = self.target.describe()
        return text if self.staging is None else f"{text}; staging in {self.staging.describe()}"


async def check_namespaces(client: HCPClient, bucket: str, staging_bucket: str | None) -> Namespaces:
    """Read the target's (and the staging bucket's) settings and refuse staging that would be
    retained: ``StagingNotAllowedError`` naming the ``staging_bucket`` setting and why."""
    if staging_bucket == bucket:
        staging_bucket = None
    target = await namespace_rules(client, bucket)
    staging = await namespace_rules(client, staging_bucket) if staging_bucket else None
    if target.retains and staging is None:
        raise StagingNotAllowedError(
            f"bucket {bucket!r} has a default retention ({target.retention_default}): every object stored "
            "there is retained, staging included, so staged objects could never be deleted. Set the "
            "'staging_bucket' setting (HCPTransferSettings.staging_bucket, or settings_overrides="
            "{'staging_bucket': '<namespace>'}) to a namespace without default retention: the job stages "
            "there and commits across namespaces. Nothing was uploaded"
        )
    if staging is not None and staging.retains:
        raise StagingNotAllowedError(
            f"the staging_bucket {staging_bucket!r} has a default retention ({staging.retention_default}): "
            "staged objects there could never be deleted. Choose a staging namespace without default "
            "retention. Nothing was uploaded"
        )
    return Namespaces(target, staging)
