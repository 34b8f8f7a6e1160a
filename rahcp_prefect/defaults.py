"""Defaults shared by the SDK, the engine, the job and the blocks, in one Prefect-free place."""

from __future__ import annotations

RETRY_DEADLINE = 300.0
"""Seconds a request keeps being retried while the store throttles it (429, 503, SlowDown)."""

MAX_BANDWIDTH = 0
"""Bytes per second all data-plane transfers of a client may move together; 0: no cap."""

TRACKER_WAIT = 300.0
"""Seconds a tracker operation waits for an unreachable database before it fails."""
