"""CompleteMultipartUpload that cannot lose a finished upload.

The store reassembles the parts before it answers, which takes minutes for large objects: the
request gets its own timeout scaled to the object's size (``ClientConfig.complete_timeout``).
When an attempt times out or its answer is lost, the retry finds the upload gone ("no such
upload", 404), because the first attempt completed it. The object is then checked with a HEAD:
its ETag must be the multipart ETag of the parts sent (MD5 of the concatenated part MD5s, ``-N``;
S3's part ETags are those MD5s), and then the upload counts as done, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .digests import bare_etag, multipart_md5
from .errors import HCPError, NotFoundError
from .keys import multipart_path, object_path

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

DEFINITIVE_REJECTIONS = range(400, 500)
"""A complete answered with one of these (but 404, 408, 429) was refused: nothing completed."""
_NOT_DEFINITIVE = frozenset({404, 408, 429})


def multipart_etag(part_etags: list[str]) -> str:
    """The ETag S3 gives the object completed from these parts, in part order (quoted)."""
    return f'"{multipart_md5(bytes.fromhex(bare_etag(etag)) for etag in part_etags)}"'


class CompletionUnknown(HCPError):
    """The complete failed in a way that leaves open whether the store completed the upload.

    The upload must not be aborted then: it may hold the only copy of a finished object.
    """


async def complete_upload(
    client: HCPClient, bucket: str, key: str, upload_id: str, etags: Mapping[int, str], size: int
) -> str:
    """Complete ``upload_id`` from ``etags`` (part number -> ETag); return the object's ETag.

    Raises ``CompletionUnknown`` unless the store definitely refused the complete (a 4xx other
    than 404/408/429 on the first attempt), in which case the ``HCPError`` itself is raised.
    """
    what = f"{bucket}/{key}"
    numbers = sorted(etags)
    expected = multipart_etag([etags[n] for n in numbers])
    retries_before = client.api_retries
    try:
        answer = await client.request_json(
            "POST",
            multipart_path(bucket, key, "/complete"),
            json={"upload_id": upload_id, "parts": [{"PartNumber": n, "ETag": etags[n]} for n in numbers]},
            timeout=client.config.complete_timeout(size),
        )
    except NotFoundError:
        found = await _object_etag(client, bucket, key)
        if found == expected:
            logger.warning(
                "Complete of %s answered 'no such upload' after a retry; the object holds the "
                "parts sent (ETag %s): done",
                what,
                expected,
            )
            return found
        raise CompletionUnknown(
            f"Multipart upload of {what} is gone and the object does not hold its parts "
            f"(ETag {found or 'none'}, expected {expected})",
            404,
        ) from None
    except HCPError as exc:
        refused = (
            exc.status_code in DEFINITIVE_REJECTIONS
            and exc.status_code not in _NOT_DEFINITIVE
            and client.api_retries == retries_before
        )
        if refused:
            raise
        raise CompletionUnknown(f"Complete of {what} failed; it may have completed: {exc}", exc.status_code) from exc
    return (answer or {}).get("etag") or expected


async def _object_etag(client: HCPClient, bucket: str, key: str) -> str | None:
    try:
        response = await client.request("HEAD", object_path(bucket, key))
    except NotFoundError:
        return None
    return response.headers.get("etag")
