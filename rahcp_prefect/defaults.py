"""Every tunable default, defined once: the blocks, the client config, the engine and the flows
read them from here (no Prefect import, nothing but constants).

A value here is what a run uses when nobody said otherwise. Each setting is declared once, with
this default, its bound and its description, in one model per concern: ``ConnectionSettings``
and ``WireSettings`` (``rahcp_prefect.client.config``), ``EngineSettings``
(``rahcp_prefect.bulk.settings``) and ``CommitSettings`` (``rahcp_prefect.job.settings``); the
blocks and ``ClientConfig`` are those models, the engine configs (``BulkUploadConfig``,
``BulkDownloadConfig``) take their defaults and bounds from ``EngineSettings``, and
``tests/client/test_defaults.py`` checks that a flow's client and engine get every value of the
blocks.
The limits S3 itself sets (not ours to tune) are at the end.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# -- the API client -----------------------------------------------------------------------------

ENDPOINT = "http://localhost:8000/api/v1"
"""The HCP backend API's base URL, ``/api/v1`` included."""
TIMEOUT = 30.0
"""Seconds a request may take (connect and read), each attempt."""
MAX_RETRIES = 4
"""Retries of a transient failure (408, 429, 5xx, dropped connections)."""
RETRY_BASE_DELAY = 1.0
"""Backoff base: ``base * 2**attempt`` seconds between retries."""
MAX_CONNECTIONS = 100
"""Size of the data-plane connection pool."""
COMPLETE_TIMEOUT_PER_GIB = 120.0
"""Seconds a CompleteMultipartUpload waits per GiB of the object, on top of the timeout."""
PRESIGN_EXPIRES = 3600
"""Seconds a presigned URL is valid."""
RETRY_DEADLINE = 300.0
"""Seconds a request keeps being retried while the store throttles it (429, 503, SlowDown);
other failures get ``MAX_RETRIES`` retries."""
MAX_BANDWIDTH = 0
"""Bytes per second all data-plane transfers of a client may move together; 0: no cap."""

# -- multipart uploads --------------------------------------------------------------------------

MULTIPART_THRESHOLD = 100 * MIB
"""Files this size or larger are uploaded in parts."""
MULTIPART_CHUNK = 64 * MIB
"""Bytes per part (raised automatically above 10,000 parts)."""
MULTIPART_CONCURRENCY = 6
"""Parts of one file in flight."""

# -- the bulk engine ----------------------------------------------------------------------------

WORKERS = 10
"""Files in flight at the start of a run (the adaptive window's first size)."""
MAX_WORKERS = 256
"""The most files (and commit copies) the adaptive window lets be in flight; at or below
``workers`` (``commit_concurrency``) the window stays fixed there."""
QUEUE_DEPTH = 8
"""Queue size multiplier: at most ``workers * queue_depth`` files wait in memory."""
PRESIGN_BATCH_SIZE = 1000
"""The most keys presigned per API call (the API's own limit); a run's first call signs
fewer (``bulk.presigner.FIRST_BATCH``) and each after it twice as many, up to this."""
CHUNK_SIZE = MIB
"""Bytes read or written per streaming step."""
STREAM_THRESHOLD = 100 * MIB
"""Downloads this size or larger are streamed to disk in ranges, smaller ones fetched whole."""
PROGRESS_INTERVAL = 5.0
"""Least seconds between two progress reports."""
COMMIT_CONCURRENCY = 8
"""Server-side copies in flight while staging is moved to the final prefix."""

# -- the tracker --------------------------------------------------------------------------------

TRACKER_WAIT = 300.0
"""Seconds a PostgreSQL tracker waits for an unreachable database before it fails."""

# -- the flows ----------------------------------------------------------------------------------

BATCH_SIZE = 5000
"""Files per upload or download task run."""

# -- limits S3 sets -----------------------------------------------------------------------------

MAX_KEY_BYTES = 1024
"""S3's (and HCP's S3 gateway's) longest object key, in UTF-8 bytes."""
