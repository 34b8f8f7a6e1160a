"""Object keys and bucket names in API paths: validation and percent-encoding."""

from __future__ import annotations

from urllib.parse import quote


def check_key(key: str) -> str:
    """Refuse keys that cannot round-trip: empty, or with a ``.``/``..`` path segment.

    HTTP clients and servers remove dot segments from paths (even inside presigned URLs), so such
    a key would silently be stored or read under another name.
    """
    if not isinstance(key, str) or key == "":
        raise ValueError("Object key must be a non-empty string")
    if "." in key and ("/./" in (padded := f"/{key}/") or "/../" in padded):
        raise ValueError(f"Object key {key!r} has a '.' or '..' path segment, which HTTP would rewrite")
    return key


def encode_key(key: str) -> str:
    """A checked key percent-encoded for a URL path (slashes kept; ``?``, ``#``, ``%``, ``+`` encoded)."""
    return quote(check_key(key), safe="/")


def encode_bucket(bucket: str) -> str:
    """A bucket name as one path segment."""
    if not isinstance(bucket, str) or not bucket:
        raise ValueError("Bucket name must be a non-empty string")
    return quote(bucket, safe="")


def object_path(bucket: str, key: str, suffix: str = "") -> str:
    """``/buckets/{bucket}/objects/{key}{suffix}`` with both parts encoded."""
    return f"/buckets/{encode_bucket(bucket)}/objects/{encode_key(key)}{suffix}"


def multipart_path(bucket: str, key: str, suffix: str = "") -> str:
    """``/buckets/{bucket}/multipart/{key}{suffix}`` with both parts encoded."""
    return f"/buckets/{encode_bucket(bucket)}/multipart/{encode_key(key)}{suffix}"
