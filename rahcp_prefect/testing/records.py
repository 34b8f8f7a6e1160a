"""What tests compare a final prefix with: its objects without the job's own files."""

from __future__ import annotations

from typing import Any

from rahcp_prefect.job.records import is_record_key


def without_records(objects: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``objects`` (key -> anything) without the job's fixity records and tag files under
    ``prefix``; at least one must be there (every commit that placed a file records it)."""
    kept = {key: value for key, value in objects.items() if not is_record_key(prefix, key)}
    assert len(kept) < len(objects), f"no fixity record under {prefix}"
    return kept
