"""Composable bulk flows: upload through staging with commit and rollback, download, cleanup."""

from rahcp_prefect.flows.cleanup import cleanup_staging
from rahcp_prefect.flows.parallel import bulk_upload_parallel
from rahcp_prefect.flows.download import bulk_download, promote_staging, staging_dir_for
from rahcp_prefect.flows.upload import BulkTransferFailed, bulk_upload

__all__ = [
    "BulkTransferFailed",
    "bulk_download",
    "bulk_upload",
    "bulk_upload_parallel",
    "cleanup_staging",
    "promote_staging",
    "staging_dir_for",
]
