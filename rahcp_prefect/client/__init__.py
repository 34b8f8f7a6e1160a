"""The async HCP SDK: ``HCPClient`` with S3 operations, MAPI and a presigned data plane.

Nothing here imports Prefect, so the SDK is usable (and testable) on its own.
"""

from .client import HCPClient
from .config import ClientConfig, TransferSettings
from .dataplane import DataPlane
from .digests import Uploaded
from .errors import (
    AuthenticationError,
    CertificateError,
    ChecksumMismatchError,
    ConflictError,
    HCPError,
    NotFoundError,
    ObjectChangedError,
    OverwriteRefusedError,
    PresignedTransferError,
    RetentionError,
    RetryableError,
    UpstreamError,
)
from .mapi import MapiOps
from .multipart import part_size_for
from .s3 import S3Ops
from .tracing import configure_tracing

__all__ = [
    "AuthenticationError",
    "CertificateError",
    "ChecksumMismatchError",
    "ClientConfig",
    "ConflictError",
    "DataPlane",
    "HCPClient",
    "HCPError",
    "MapiOps",
    "NotFoundError",
    "ObjectChangedError",
    "OverwriteRefusedError",
    "PresignedTransferError",
    "RetentionError",
    "RetryableError",
    "S3Ops",
    "TransferSettings",
    "Uploaded",
    "UpstreamError",
    "configure_tracing",
    "part_size_for",
]
