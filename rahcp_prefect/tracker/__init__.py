"""Transfer tracker: per-key outcomes of a job, shared by reruns and parallel runs.

``create_tracker(target, job=...)`` opens a ``SqliteTracker`` (a local file, the default) or a
``PostgresTracker`` (a shared database, for parallel runs on several machines). Both implement
``TrackerProtocol``. Nothing here imports Prefect.

Decisions callers may rely on:

- Keys and job names are any Unicode text of 1 to 1200 UTF-8 bytes, except NUL and lone
  surrogates (``InvalidKeyError``, on both backends: PostgreSQL text cannot hold NUL, and
  surrogates are not UTF-8). Error messages are never refused: NUL is escaped instead.
- ``claim`` hands out keys that are not done and not under a live lease. ``mark`` leaves the
  lease alone, so a key marked error comes back once its lease ends or its run ``release``s it
  (a retry with the lease as back-off); a key marked done never comes back.
- ``renew`` and ``release`` act on live leases only; an expired lease is no longer held.
- ``acquire_commit`` creates the job's row if needed; ``JobInfo.commit_owner`` is None once
  the commit lease has expired.
- ``take_job_lease`` gives the job to one single-mode run at a time (or shares it among
  cooperative runs); ``JobInfo.lease_owner`` is None once the job lease has expired.
- ``mark``/``register`` store the file's ``mtime_ns`` as given; ``entries()`` returns it.

Added beyond the protocol: ``delete_job()`` (forget a whole job), use as a context manager.
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
from rahcp_prefect.tracker.protocol import (
    FileDigests,
    FileEntry,
    JobInfo,
    LeaseAnswer,
    JobState,
    LeaseMode,
    TrackerProtocol,
    TransferStatus,
)
from rahcp_prefect.tracker import schema
from rahcp_prefect.tracker.schema import SCHEMA_VERSION
from rahcp_prefect.tracker.sqlite import SqliteTracker

#: The reference SDK's name for the default backend.
TransferTracker = SqliteTracker

__all__ = [
    "SCHEMA_VERSION",
    "FileDigests",
    "FileEntry",
    "InvalidKeyError",
    "Job",
    "JobInfo",
    "LeaseAnswer",
    "JobState",
    "LeaseMode",
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
