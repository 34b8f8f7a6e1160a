"""Ranged GETs served from moto's stored object without copying all of it.

moto (5.2.5) answers ``GET`` with ``Range: bytes=a-b`` by reading the whole object into memory
and slicing it: six parallel ranges of a 1 GiB object cost the server six GiB of copies (and of
memory), where real S3 reads only the range. For a single ``bytes=a-b`` range of an existing
object this module reads just those bytes from moto's own buffer, under the key's lock, and
answers as S3 does (206, ``Content-Range``, the object's ``ETag``). Anything else (no such
bucket or key, a suffix or multi-range, a range past the end) is left to moto, so its errors
stay S3's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")
_STREAM_CHUNK = 1 << 20


def serve_range(environ: dict[str, Any], path: str, start_response: Callable[..., Any]) -> Iterable[bytes] | None:
    """The 206 answer for a plain single-range GET of an existing object, else None.

    ``path`` is the decoded request path, ``/bucket/key``.
    """
    match = _RANGE.match(environ.get("HTTP_RANGE", "").strip())
    if match is None or environ.get("REQUEST_METHOD") != "GET":
        return None
    bucket_name, _, key_name = path.lstrip("/").partition("/")
    if not key_name or _has_subresource(environ.get("QUERY_STRING", "")):
        return None
    key = _find_key(bucket_name, key_name)
    if key is None:
        return None
    size = int(key.size)
    first, last = int(match.group(1)), int(match.group(2))
    if first > last or first >= size:
        return None
    last = min(last, size - 1)
    headers = [
        ("Content-Type", key.metadata.get("Content-Type") or "binary/octet-stream"),
        ("Content-Length", str(last - first + 1)),
        ("Content-Range", f"bytes {first}-{last}/{size}"),
        ("ETag", key.etag),
        ("Last-Modified", key.last_modified_RFC1123),
        ("Accept-Ranges", "bytes"),
    ]
    start_response("206 Partial Content", headers)
    return _read(key, first, last - first + 1)


def _has_subresource(query: str) -> bool:
    """Queries other than the presigned-URL signature (``partNumber``, ``versionId``...)."""
    names = {item.partition("=")[0] for item in query.split("&") if item}
    return any(not name.startswith("X-Amz-") for name in names)


def _find_key(bucket_name: str, key_name: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    try:
        bucket = backend.buckets[bucket_name]
    except KeyError:
        return None
    try:
        key = bucket.keys.get(key_name)
    except Exception:  # noqa: BLE001 - moto's versioned store: let moto answer
        return None
    if key is None or type(key).__name__ != "FakeKey" or not hasattr(key, "_value_buffer"):
        return None
    return key


def _read(key: Any, offset: int, length: int) -> Iterator[bytes]:
    """The range in 1 MiB pieces, each read under the key's lock (another request may seek)."""
    while length > 0:
        with key.lock:
            key._value_buffer.seek(offset)
            chunk = key._value_buffer.read(min(length, _STREAM_CHUNK))
        if not chunk:
            return
        offset += len(chunk)
        length -= len(chunk)
        yield chunk
