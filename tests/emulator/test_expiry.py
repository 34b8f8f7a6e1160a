"""The presigned-expiry rule of the built-in S3 server, as a pure function."""

from __future__ import annotations

from datetime import datetime, timezone

from rahcp_prefect.testing.expiry import expired_body, expired_presign

SIGNED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
QUERY = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-Signature=ab"


def test_expiry_boundary() -> None:
    assert expired_presign(QUERY, now=SIGNED + 60) is None
    assert expired_presign(QUERY, now=SIGNED + 60.5) == (60, SIGNED)


def test_not_a_presign_or_malformed() -> None:
    assert expired_presign("uploadId=1&partNumber=2", now=SIGNED + 10**6) is None
    assert expired_presign("X-Amz-Expires=60&X-Amz-Date=garbage", now=SIGNED + 10**6) is None
    assert expired_presign("X-Amz-Expires=soon&X-Amz-Date=20260102T030405Z", now=SIGNED + 10**6) is None


def test_body_is_s3_access_denied() -> None:
    body = expired_body(60, SIGNED).decode()
    assert "<Code>AccessDenied</Code>" in body
    assert "<Message>Request has expired</Message>" in body
    assert "<Expires>2026-01-02T03:05:05Z</Expires>" in body
