"""The transfer engine's settings, each declared once with its default, bound and description.

The ``HCPTransferSettings`` block is these (with the client's ``WireSettings`` and the job's
``CommitSettings``); ``BulkUploadConfig`` and ``BulkDownloadConfig`` take their defaults from
here and validate through this model, and ``engine_options`` (``rahcp_prefect.bulk.config``)
hands a run's values to them: adding a setting is one field here (and the config's field that
uses it, defaulting to this one).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from rahcp_prefect import defaults
from rahcp_prefect.client.sizes import FormSize, check_minimum_size, size_field


class EngineSettings(BaseModel):
    """How the bulk engine moves files: files in flight, batching, streaming, progress, checks."""

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
        description="The most keys presigned per API call (a run's first calls sign fewer).",
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
    progress_interval: float = Field(
        default=defaults.PROGRESS_INTERVAL,
        ge=0,
        title="Progress interval (seconds)",
        description="Minimum seconds between updates of the progress artifact (0: at every file).",
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

    @field_validator("chunk_size")
    @classmethod
    def _chunk_size_at_least_its_minimum(cls, value: int, info: ValidationInfo) -> int:
        # its own name: the block inherits WireSettings' validator too, and one name would hide the other
        return check_minimum_size(cls, str(info.field_name), value)
