"""The job's rules tested without Prefect: on both tracker backends, against the emulator."""

from __future__ import annotations

from tests.tracker.conftest import backend, open_tracker, target, tracker  # noqa: F401  (fixtures)
