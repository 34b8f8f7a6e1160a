"""The bulk transfer engine: scan -> presign in batches -> worker pool -> tracker.

``bulk_upload`` moves a folder (or an explicit list of files) to HCP, ``bulk_download`` a
prefix (or a list of keys) back to disk. Both are resumable through a tracker and never import
Prefect. The pieces (``scanner``, ``presigner``, ``pipeline``, ``stats``) are separate modules
so other sources of work (keys claimed from a shared tracker) can reuse them.
"""

from .config import BulkDownloadConfig, BulkUploadConfig
from .download import bulk_download
from .errors import BulkFileError, FileChangedError, VerificationError
from .paths import UnsafeKeyError
from .stats import TransferStats
from .upload import bulk_upload

__all__ = [
    "BulkDownloadConfig",
    "BulkFileError",
    "BulkUploadConfig",
    "FileChangedError",
    "TransferStats",
    "UnsafeKeyError",
    "VerificationError",
    "bulk_download",
    "bulk_upload",
]
