"""The job's settings (commit, manifest, staging, reporting), each declared once with its
default, bound and description; the ``HCPTransferSettings`` block is these (with the engine's
and the client's), and the flows hand them to the job."""

from __future__ import annotations

from pydantic import BaseModel, Field

from rahcp_prefect import defaults


class CommitSettings(BaseModel):
    """How a job commits staging to the final prefix, and how often a long phase reports."""

    commit_concurrency: int = Field(
        default=defaults.COMMIT_CONCURRENCY,
        ge=1,
        le=256,
        title="Commit concurrency",
        description=(
            "Server-side copies in flight while staging is committed to the final prefix "
            "(one copy per object: raise it when HCP answers copies slowly)."
        ),
    )
    log_interval: float = Field(
        default=60.0,
        gt=0,
        title="Log interval (seconds)",
        description=(
            "Seconds between progress log lines during a long phase (e.g. the commit) and between "
            "counts of failed files once the first 20 were logged."
        ),
    )
    write_manifest: bool = Field(
        default=True,
        title="Write manifest",
        description=(
            "Each commit writes manifest-sha256.txt (BagIt: the SHA-256 of every file the job "
            "holds) at the root of the final prefix, last; downloads and bulk-verify check it."
        ),
    )
    staging_bucket: str | None = Field(
        default=None,
        title="Staging bucket",
        description=(
            "Stage uploads in this bucket (another HCP namespace, without default retention) and "
            "commit across namespaces. Needed when the target namespace has a default retention: "
            "staging there would be retained too, and such a run refuses before uploading."
        ),
    )
    listing_cache_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        title="Listing cache (seconds)",
        description=(
            "How long the API may serve a cached listing (the reference backend with Redis: 120): "
            "the staging and final checks read a listing that lacks just-written objects again, "
            "with backoff, for up to this long before they call a file missing."
        ),
    )
