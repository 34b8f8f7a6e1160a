"""Transfer tracker: per-key outcomes of a job, shared by reruns and parallel runs.

``create_tracker(target, job=...)`` opens a ``SqliteTracker`` (a local file, the default) or a
``PostgresTracker`` (a shared database, for parallel runs on several machines). Both implement
``TrackerProtocol``. Nothing here imports Prefect.
"""

from rahcp_prefect.tracker.dsn import mask_dsn
from rahcp_prefect.tracker.errors import (
    InvalidKeyError,
    TrackerClosedError,
    TrackerConfigError,
    TrackerConnectionError,
    TrackerError,
    TrackerSchemaError,
)
from rahcp_prefect.tracker.factory import create_tracker
from rahcp_prefect.tracker.models import Job, SchemaVersion, Transfer
from rahcp_prefect.tracker.postgres import PostgresTracker
from rahcp_prefect.tracker.protocol import JobInfo, JobState, TrackerProtocol, TransferStatus
from rahcp_prefect.tracker import schema
from rahcp_prefect.tracker.schema import SCHEMA_VERSION
from rahcp_prefect.tracker.sqlite import SqliteTracker

#: The reference SDK's name for the default backend.
TransferTracker = SqliteTracker

__all__ = [
    "SCHEMA_VERSION",
    "InvalidKeyError",
    "Job",
    "JobInfo",
    "JobState",
    "PostgresTracker",
    "SchemaVersion",
    "SqliteTracker",
    "TrackerClosedError",
    "TrackerConfigError",
    "TrackerConnectionError",
    "TrackerError",
    "TrackerProtocol",
    "TrackerSchemaError",
    "Transfer",
    "TransferStatus",
    "TransferTracker",
    "create_tracker",
    "mask_dsn",
]
