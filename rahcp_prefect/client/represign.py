"""Presign again once on 403: the one place a presigned transfer survives an expired URL.

A presigned URL can expire between its signing and its use (a long queue, a slow disk), and S3
answers 403. Every transfer on a single presigned URL (the SDK's uploads and downloads, the bulk
engine's, the fixity check's) goes through ``presigned_transfer``: the key is signed again once
and the transfer repeated; a second 403 is raised. (Multipart parts share one signing of all
parts and re-sign them together, see ``client.multipart``.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import PresignedTransferError

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def presigned_transfer(
    presign: Callable[[], Awaitable[str]],
    transfer: Callable[[str], Awaitable[T]],
    url: str | None = None,
    *,
    on_presign_again: Callable[[], object] | None = None,
) -> T:
    """``transfer(url)``, with ``url`` from ``presign()`` unless given; a 403 presigns once more
    (``on_presign_again()`` is called first, e.g. to count a retry) and transfers again."""
    if url is None:
        url = await presign()
    try:
        return await transfer(url)
    except PresignedTransferError as exc:
        if exc.status_code != 403:
            raise
        logger.debug("403 on a presigned URL (%s): presigning again", exc.message)
        if on_presign_again is not None:
            on_presign_again()
        return await transfer(await presign())
