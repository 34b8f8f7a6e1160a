"""Multipart uploads left open (``client.s3``'s part that finds and aborts them): an upload
neither completed nor aborted holds its parts, and one completing later would put an object back
where a cleanup deleted it. ``S3Ops`` is built on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rahcp_prefect.errors import on_bucket, on_object

from .errors import NotFoundError
from .keys import encode_bucket, multipart_path
from .listing import BATCH

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)


class OpenUploads:
    """List and abort open multipart uploads through the HCP API."""

    _client: HCPClient

    @on_bucket
    async def list_multipart_uploads(
        self, bucket: str, prefix: str = "", max_uploads: int = BATCH
    ) -> dict[str, Any]:
        """The open (neither completed nor aborted) multipart uploads under ``prefix``, one page:
        ``{"bucket", "uploads": [{"Key", "UploadId", "Initiated", "StorageClass"}], "is_truncated"}``.

        The API takes no marker, so this is always the first ``max_uploads`` (at most 1,000)
        in key order; ``abort_multipart_uploads`` gets past them by aborting.
        """
        params: dict[str, Any] = {"max_uploads": max_uploads}
        if prefix:
            params["prefix"] = prefix
        return await self._client.request_json("GET", f"/buckets/{encode_bucket(bucket)}/uploads", params=params)

    @on_object
    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False when it was already gone (completed or aborted)."""
        try:
            await self._client.request_json("POST", multipart_path(bucket, key, "/abort"), json={"upload_id": upload_id})
        except NotFoundError:
            return False
        return True

    @on_bucket
    async def abort_multipart_uploads(
        self,
        bucket: str,
        prefix: str,
        *,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        page_size: int = BATCH,
    ) -> list[dict[str, Any]]:
        """Abort every open multipart upload under ``prefix`` except those ``keep(upload)``
        spares (e.g. too young, or of a live job); returns the uploads aborted.

        Pages are listed again after each round of aborts (the API has no marker): a page that
        holds only spared uploads ends the search, and past 1,000 spared ones the rest stay.
        """
        if not prefix:
            raise ValueError("prefix must not be empty (it would abort every upload of the bucket)")
        aborted: list[dict[str, Any]] = []
        while True:
            page = await self.list_multipart_uploads(bucket, prefix, page_size)
            targets = [u for u in page.get("uploads", []) if keep is None or not keep(u)]
            for upload in targets:
                if await self.abort_multipart_upload(bucket, upload["Key"], upload["UploadId"]):
                    aborted.append(upload)
            if not targets or not page.get("is_truncated"):
                break
        if aborted:
            logger.info("Aborted %d open multipart upload(s) under %s/%s", len(aborted), bucket, prefix)
        return aborted
