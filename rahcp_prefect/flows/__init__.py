"""Composable bulk flows: upload through staging with commit and rollback, download, cleanup,
and the audit (``bulk_verify``)."""

from rahcp_prefect.flows.cleanup import cleanup_staging
from rahcp_prefect.flows.parallel import bulk_upload_parallel
from rahcp_prefect.flows.download import bulk_download, promote_staging, staging_dir_for
from rahcp_prefect.flows.upload import BulkTransferFailed, bulk_upload
from rahcp_prefect.flows.verify import bulk_verify

__all__ = [
    "BulkTransferFailed",
    "bulk_download",
    "bulk_upload",
    "bulk_upload_parallel",
    "bulk_verify",
    "cleanup_staging",
    "promote_staging",
    "staging_dir_for",
]
