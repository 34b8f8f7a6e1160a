"""Presigned-URL expiry for the built-in S3 server, which moto (5.2.5) does not enforce.

A SigV4 presigned request past ``X-Amz-Date + X-Amz-Expires`` gets real S3's answer:
403 ``AccessDenied`` "Request has expired" (XML), so clients' expiry handling can be tested.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl

AMZ_DATE = "%Y%m%dT%H%M%SZ"


def expired_presign(query: str, now: float | None = None) -> tuple[int, float] | None:
    """(expires_in, signed_at) when ``query`` is an expired SigV4 presign, else None."""
    if "X-Amz-Expires=" not in query:
        return None
    params = dict(parse_qsl(query))
    try:
        expires = int(params["X-Amz-Expires"])
        signed = datetime.strptime(params["X-Amz-Date"], AMZ_DATE).replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return None
    signed_at = signed.timestamp()
    if (time.time() if now is None else now) > signed_at + expires:
        return expires, signed_at
    return None


def expired_body(expires: int, signed_at: float) -> bytes:
    """S3's XML error body for an expired presigned request."""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    expired_at = datetime.fromtimestamp(signed_at + expires, timezone.utc).strftime(fmt)
    server_time = datetime.now(timezone.utc).strftime(fmt)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
        f"<X-Amz-Expires>{expires}</X-Amz-Expires><Expires>{expired_at}</Expires>"
        f"<ServerTime>{server_time}</ServerTime><RequestId>{uuid.uuid4().hex[:16].upper()}"
        "</RequestId></Error>"
    ).encode()
