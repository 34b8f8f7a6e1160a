"""Prefect blocks: HCP credentials, transfer settings and the transfer tracker.

Blocks hold what a deployment should not hard-code: where HCP is and who we are
(``HCPCredentials``), how hard to push the wire (``HCPTransferSettings``), and where the
transfer state lives (``HCPTracker``). Secrets are ``SecretStr`` and never leave the block
except into the SDK, which redacts them from every log line and error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator

from rahcp_prefect import defaults
from rahcp_prefect.bulk.validation import InvalidInputError, check_overrides, describe_errors
from rahcp_prefect.client.config import MIN_PART_SIZE
from rahcp_prefect.client.sizes import FormSize, check_minimum_size, size_field

if TYPE_CHECKING:
    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.tracker.protocol import TrackerProtocol

_DOCS_URL = "https://pypi.org/project/rahcp-prefect/"
#: The blocks' logo in the Prefect UI: ``rahcp_prefect/assets/logo.png`` (256 px square, drawn by
#: ``scripts/make_logo.py``) as the repository serves it.
LOGO_URL = "https://raw.githubusercontent.com/rahcp/rahcp-prefect/main/rahcp_prefect/assets/logo.png"
LOGO_FILE = "assets/logo.png"


class HCPCredentials(Block):
    """Where the HCP API is and how to log in to it.

    Example:
        Load stored credentials and open a client:
        ```python
        from rahcp_prefect.blocks import HCPCredentials

        credentials = HCPCredentials.load("BLOCK_NAME")
        async with credentials.get_client() as client:
            print(await client.s3.list_buckets())
        ```
    """

    _block_type_name = "HCP Credentials"
    _documentation_url = _DOCS_URL  # type: ignore[assignment]
    _logo_url = LOGO_URL  # type: ignore[assignment]

    endpoint: str = Field(
        default=defaults.ENDPOINT,
        title="Endpoint",
        description="Base URL of the HCP backend API, including the /api/v1 prefix.",
    )
    username: str = Field(title="Username", description="HCP user name.")
    password: SecretStr = Field(title="Password", description="HCP password, stored as a secret.")
    tenant: str | None = Field(
        default=None,
        title="Tenant",
        description="HCP tenant to work in; leave empty for system-level access.",
    )
    verify_ssl: bool = Field(
        default=True,
        title="Verify SSL",
        description="Verify TLS certificates of the API and of the S3 data endpoints.",
    )
    timeout: float = Field(
        default=defaults.TIMEOUT, gt=0, title="Timeout (seconds)", description="Per-request timeout in seconds."
    )
    max_retries: int = Field(
        default=defaults.MAX_RETRIES,
        ge=0,
        title="Max retries",
        description="Retries for transient failures (408, 429, 5xx, dropped connections).",
    )
    retry_base_delay: float = Field(
        default=defaults.RETRY_BASE_DELAY,
        ge=0,
        title="Retry base delay (seconds)",
        description="Base of the exponential backoff between retries, in seconds.",
    )

    def get_client(self, settings: HCPTransferSettings | None = None) -> HCPClient:
        """A new, not yet opened ``HCPClient``; use it as ``async with``."""
        from rahcp_prefect.client import HCPClient

        options: dict[str, Any] = settings.client_options() if settings else {}
        return HCPClient(
            endpoint=self.endpoint,
            username=self.username,
            password=self.password.get_secret_value(),
            tenant=self.tenant or None,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_base_delay=self.retry_base_delay,
            verify_ssl=self.verify_ssl,
            **options,
        )


class HCPTransferSettings(Block):
    """How bulk transfers use the wire: concurrency, batching, multipart and checks.

    Example:
        Load settings and override one field for a run:
        ```python
        from rahcp_prefect.blocks import HCPTransferSettings

        settings = HCPTransferSettings.load("BLOCK_NAME")
        faster = settings.with_overrides({"workers": 32})
        ```
    """

    _block_type_name = "HCP Transfer Settings"
    _documentation_url = _DOCS_URL  # type: ignore[assignment]
    _logo_url = LOGO_URL  # type: ignore[assignment]

    workers: int = Field(
        default=defaults.WORKERS,
        ge=1,
        le=512,
        title="Workers",
        description="Files in flight at the start of a run (the adaptive window's first size).",
    )
    max_workers: int = Field(
        default=defaults.MAX_WORKERS,
        ge=1,
        le=1024,
        title="Max workers",
        description=(
            "The most files (and commit copies) in flight: the window grows from workers "
            "(commit_concurrency) while throughput rises with it, e.g. against a distant HCP. "
            "Set it to workers for a fixed number."
        ),
    )
    queue_depth: int = Field(
        default=defaults.QUEUE_DEPTH,
        ge=1,
        title="Queue depth",
        description="Queue size multiplier: at most workers x queue_depth files wait in memory.",
    )
    presign_batch_size: int = Field(
        default=defaults.PRESIGN_BATCH_SIZE,
        ge=1,
        le=1000,
        title="Presign batch size",
        description="Keys presigned per API call.",
    )
    chunk_size: FormSize = size_field(
        defaults.CHUNK_SIZE,
        minimum=64 * 1024,
        title="Chunk size",
        description="Size read or written per streaming step",
    )
    stream_threshold: FormSize = size_field(
        defaults.STREAM_THRESHOLD,
        title="Stream threshold",
        description="Downloads of this size or larger are streamed to disk in chunks",
    )
    multipart_threshold: FormSize = size_field(
        defaults.MULTIPART_THRESHOLD,
        minimum=MIN_PART_SIZE,
        title="Multipart threshold",
        description="Uploads of this size or larger use multipart",
    )
    multipart_chunk: FormSize = size_field(
        defaults.MULTIPART_CHUNK,
        minimum=MIN_PART_SIZE,
        title="Multipart chunk",
        description="Part size of multipart uploads (raised automatically above 10,000 parts)",
    )
    multipart_concurrency: int = Field(
        default=defaults.MULTIPART_CONCURRENCY, ge=1, title="Multipart concurrency", description="Parts in flight per file."
    )
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
    retry_deadline: float = Field(
        default=defaults.RETRY_DEADLINE,
        ge=0,
        le=86400,
        title="Retry deadline (seconds)",
        description=(
            "How long a request keeps being retried, with backoff, while HCP throttles it "
            "(429, 503 SlowDown); meanwhile fewer files are sent at once. Other failures are "
            "retried a fixed number of times."
        ),
    )
    max_bandwidth: FormSize = size_field(
        defaults.MAX_BANDWIDTH,
        title="Max bandwidth (per second)",
        description="Bytes per second a run moves at most, both directions together (0: no cap)",
    )
    progress_interval: float = Field(
        default=defaults.PROGRESS_INTERVAL,
        gt=0,
        title="Progress interval (seconds)",
        description="Minimum seconds between updates of the progress artifact.",
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
    verify_upload: bool = Field(
        default=False,
        title="Verify upload",
        description="Check each uploaded object's size with a HEAD request.",
    )
    verify_download: bool = Field(
        default=False,
        title="Verify download",
        description="Check each downloaded file's size against the listing.",
    )

    @field_validator("chunk_size", "multipart_threshold", "multipart_chunk")
    @classmethod
    def _size_at_least_its_minimum(cls, value: int, info: ValidationInfo) -> int:
        return check_minimum_size(cls, str(info.field_name), value)

    def with_overrides(self, overrides: dict[str, Any] | None) -> HCPTransferSettings:
        """A copy with ``overrides`` applied and validated: an unknown name, a value of the wrong
        type or out of range raises ``InvalidInputError`` naming the setting and the value."""
        overrides = check_overrides(overrides, _overridable(type(self)))
        if not overrides:
            return self
        try:
            return type(self).model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            raise InvalidInputError(describe_errors(exc.errors(), "settings_overrides")) from None

    def client_options(self) -> dict[str, Any]:
        """The ``HCPClient`` keyword arguments these settings decide."""
        return {
            "multipart_threshold": self.multipart_threshold,
            "multipart_chunk": self.multipart_chunk,
            "multipart_concurrency": self.multipart_concurrency,
            "retry_deadline": self.retry_deadline,
            "max_bandwidth": self.max_bandwidth,
        }

    def engine_options(self, direction: str) -> dict[str, Any]:
        """The bulk config fields these settings decide, for ``upload`` or ``download``."""
        options: dict[str, Any] = {
            "workers": self.workers,
            "max_workers": self.max_workers,
            "queue_depth": self.queue_depth,
            "presign_batch_size": self.presign_batch_size,
            "chunk_size": self.chunk_size,
            "progress_interval": self.progress_interval,
        }
        if direction == "upload":
            options["verify_upload"] = self.verify_upload
        elif direction == "download":
            options["verify_download"] = self.verify_download
            options["stream_threshold"] = self.stream_threshold
        else:
            raise ValueError(f"direction must be 'upload' or 'download', not {direction!r}")
        return options


def _overridable(settings: type[HCPTransferSettings]) -> dict[str, Any]:
    """The settings a run may override: the block's own fields, not Prefect's bookkeeping."""
    return {name: info for name, info in settings.model_fields.items() if name != "block_type_slug"}


class HCPTracker(Block):
    """Where transfer state lives: a SQLite file (one machine) or PostgreSQL (shared).

    Use PostgreSQL when several flow runs, possibly on several workers, share one job.

    Example:
        Open the tracker of one job:
        ```python
        from rahcp_prefect.blocks import HCPTracker

        tracker_block = HCPTracker.load("BLOCK_NAME")
        tracker = tracker_block.get_tracker("bulk-upload:my-bucket/scans/")
        print(tracker.summary())
        tracker.close()
        ```
    """

    _block_type_name = "HCP Tracker"
    _documentation_url = _DOCS_URL  # type: ignore[assignment]
    _logo_url = LOGO_URL  # type: ignore[assignment]

    sqlite_path: str | None = Field(
        default=None,
        title="SQLite path",
        description="Path of the SQLite tracker file; used when no PostgreSQL DSN is set.",
    )
    postgres_dsn: SecretStr | None = Field(
        default=None,
        title="PostgreSQL DSN",
        description="postgresql:// DSN of a shared tracker database, stored as a secret.",
    )
    lease_seconds: float = Field(
        default=120.0,
        gt=0,
        title="Lease seconds",
        description="How long a run's claim on a batch of keys lasts unless renewed.",
    )
    tracker_wait: float = Field(
        default=defaults.TRACKER_WAIT,
        gt=0,
        le=86400,
        title="Tracker wait (seconds)",
        description=(
            "How long a run waits for an unreachable PostgreSQL tracker (a restart, a failover) "
            "before it fails."
        ),
    )

    @model_validator(mode="after")
    def _one_target(self) -> HCPTracker:
        if self.sqlite_path and self.postgres_dsn:
            raise ValueError("set either sqlite_path or postgres_dsn, not both")
        return self

    @property
    def is_shared(self) -> bool:
        """True when the tracker is PostgreSQL, so parallel runs can share a job."""
        return self.postgres_dsn is not None

    def target(self) -> str:
        """The tracker target given to ``create_tracker`` (contains the DSN's secret)."""
        if self.postgres_dsn is not None:
            return self.postgres_dsn.get_secret_value()
        path = Path(self.sqlite_path or "~/.rahcp/tracker.db").expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def get_tracker(self, job: str) -> TrackerProtocol:
        """Open the tracker of ``job``; a bad target fails here, before any transfer."""
        from rahcp_prefect.tracker import create_tracker

        options = {"wait": self.tracker_wait} if self.is_shared else {}
        return create_tracker(self.target(), job=job, **options)


# Registered with the blocks above through the ``prefect.collections`` entry point (this module).
from rahcp_prefect.bucket import HCPBucket  # noqa: E402

__all__ = ["HCPBucket", "HCPCredentials", "HCPTracker", "HCPTransferSettings"]
