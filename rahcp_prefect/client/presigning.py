"""Presigned URLs (``client.s3``'s part that signs): one key, or many in bulk requests with
the keys the server left out signed one by one. A URL is a secret: it grants access until it
expires. ``S3Ops`` is built on it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rahcp_prefect import defaults
from rahcp_prefect.errors import on_bucket, on_object

from .keys import check_key, encode_bucket
from .listing import BATCH

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

PRESIGN_EXPIRES = defaults.PRESIGN_EXPIRES


class Presigning:
    """Presigned GET and PUT URLs through the HCP API."""

    _client: HCPClient

    @on_object
    async def presign_get(self, bucket: str, key: str, expires: int = PRESIGN_EXPIRES) -> str:
        """A presigned GET URL (a secret: it grants access until it expires)."""
        return await self._presign(bucket, key, "get_object", expires)

    @on_object
    async def presign_put(self, bucket: str, key: str, expires: int = PRESIGN_EXPIRES) -> str:
        """A presigned PUT URL (a secret: it grants access until it expires)."""
        return await self._presign(bucket, key, "put_object", expires)

    async def _presign(self, bucket: str, key: str, method: str, expires: int) -> str:
        check_key(key)
        answer = await self._client.request_json(
            "POST",
            "/presign",
            json={"bucket": bucket, "key": key, "method": method, "expires_in": expires},
        )
        return answer["url"]

    @on_bucket
    async def presign_bulk(
        self,
        bucket: str,
        keys: Sequence[str],
        method: str = "get_object",
        expires: int = PRESIGN_EXPIRES,
    ) -> dict[str, str]:
        """Presign many keys, ``{key: url}``, 1000 per request; keys the server left out are
        presigned one by one with ``/presign``."""
        for key in keys:
            check_key(key)
        urls: dict[str, str] = {}
        path = f"/buckets/{encode_bucket(bucket)}/objects/presign"
        for start in range(0, len(keys), BATCH):
            batch = list(keys[start : start + BATCH])
            answer = await self._client.request_json(
                "POST", path, json={"keys": batch, "method": method, "expires_in": expires}
            )
            urls.update({item["key"]: item["url"] for item in answer.get("urls", [])})
        missing = [key for key in dict.fromkeys(keys) if key not in urls]
        if missing:
            logger.info("Bulk presign left out %d key(s) of %s: presigning one by one", len(missing), bucket)
            for key in missing:
                urls[key] = await self._presign(bucket, key, method, expires)
        return urls
