"""The transfer engine's settings, each declared once with its default, bound and description.

The ``HCPTransferSettings`` block is these (with the client's ``WireSettings`` and the job's
``CommitSettings``); ``engine_options`` hands a run's values to ``BulkUploadConfig`` or
``BulkDownloadConfig``: every field of this model that the config has, so adding a setting is
one field here (and the config's field that uses it).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from rahcp_prefect import defaults
from rahcp_prefect.client.sizes import FormSize, check_minimum_size, size_field

from .config import BulkDownloadConfig, BulkUploadConfig


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
    progress_interval: float = Field(
        default=defaults.PROGRESS_INTERVAL,
        gt=0,
        title="Progress interval (seconds)",
        description="Minimum seconds between updates of the progress artifact.",
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


ENGINE_CONFIGS = {"upload": BulkUploadConfig, "download": BulkDownloadConfig}


def engine_options(settings: EngineSettings, direction: str) -> dict[str, Any]:
    """The ``BulkUploadConfig``/``BulkDownloadConfig`` keyword arguments ``settings`` decide
    for ``direction`` (``upload`` or ``download``): every engine setting the config has."""
    config = ENGINE_CONFIGS.get(direction)
    if config is None:
        raise ValueError(f"direction must be 'upload' or 'download', not {direction!r}")
    names = {item.name for item in fields(config)} & set(EngineSettings.model_fields)
    return {name: getattr(settings, name) for name in sorted(names)}
