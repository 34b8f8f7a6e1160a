"""Request counts per (plane, method, route), so tests can assert call patterns.

Planes: ``"api"`` (the emulator's HTTP API; route = the route template relative to the base URL,
e.g. ``/buckets/{bucket}/objects/{key:path}``, or ``/liveness`` for root routes), ``"data"``
(clients talking to the S3 server directly through presigned URLs; route = ``/``, ``/{bucket}``,
``/{bucket}/{key}`` or ``/{bucket}/{key}?partNumber`` for multipart part uploads) and
``"backend"`` (the emulator's own boto3 calls to S3, same route patterns as ``"data"``).
"""

from __future__ import annotations

import threading
from collections import Counter

CountKey = tuple[str, str, str]

# The keys tests count most, named once: the requests of the SDK and the engine.
LOGIN: CountKey = ("api", "POST", "/auth/token")
PRESIGN: CountKey = ("api", "POST", "/presign")
PRESIGN_BULK: CountKey = ("api", "POST", "/buckets/{bucket}/objects/presign")
LIST_OBJECTS: CountKey = ("api", "GET", "/buckets/{bucket}/objects")
HEAD_OBJECT: CountKey = ("api", "HEAD", "/buckets/{bucket}/objects/{key:path}")
DATA_PUT: CountKey = ("data", "PUT", "/{bucket}/{key}")
DATA_GET: CountKey = ("data", "GET", "/{bucket}/{key}")
PART_PUT: CountKey = ("data", "PUT", "/{bucket}/{key}?partNumber")


class RequestCounter:
    """A thread-safe Counter of requests."""

    def __init__(self) -> None:
        self._counts: Counter[CountKey] = Counter()
        self._lock = threading.Lock()

    def add(self, plane: str, method: str, route: str) -> None:
        with self._lock:
            self._counts[(plane, method, route)] += 1

    def snapshot(self) -> Counter[CountKey]:
        """A copy, safe to inspect while requests continue."""
        with self._lock:
            return Counter(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def s3_route(path: str, query: str) -> str:
    """Classify an S3 path-style request path into a route pattern (bucket and key elided)."""
    parts = path.lstrip("/").split("/", 1)
    if not parts[0]:
        return "/"
    if len(parts) == 1 or parts[1] == "":
        return "/{bucket}"
    if "partNumber=" in query:
        return "/{bucket}/{key}?partNumber"
    return "/{bucket}/{key}"
