"""Contract: what S3 enforces and moto does not — force delete of a bucket of any size, and
keys over 1,024 bytes refused (400 ``KeyTooLongError``) — hcp-api.md sections 2 to 4."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator

from .conftest import path_key, put_object

LONG_KEY = "k/" + "x" * 1023  # 1,025 bytes
LONGEST_KEY = "k/" + "é" * 511  # 1,024 bytes of UTF-8 (a 2-byte character each)


def test_force_delete_empties_a_bucket_of_any_size(api: httpx.Client, hcp_emulator: HCPEmulator) -> None:
    """1,200 objects (more than one listing page of versions) and 1,001 open multipart uploads
    (more than one page of uploads): the forced delete removes all and answers 200."""
    name = f"bk-{uuid.uuid4().hex[:12]}"
    assert api.post("/buckets", json={"bucket": name}).status_code == 201
    s3 = hcp_emulator.s3
    for index in range(1200):
        s3.put_object(Bucket=name, Key=f"o/{index:05d}", Body=b"x")
    for index in range(1001):
        s3.create_multipart_upload(Bucket=name, Key=f"u/{index:05d}")
    assert api.delete(f"/buckets/{name}").status_code == 409

    forced = api.delete(f"/buckets/{name}", params={"force": "true"}, timeout=600)  # 2,201 S3 calls, loaded machine
    assert (forced.status_code, forced.json()) == (200, {"status": "deleted", "bucket": name})
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize("route", ["presign", "bulk presign", "multipart initiate", "multipart presign", "copy"])
def test_keys_over_1024_bytes_are_refused_as_s3_refuses_them(api: httpx.Client, hcp_bucket: str, route: str) -> None:
    def call(key: str) -> httpx.Response:
        if route == "presign":
            return api.post("/presign", json={"bucket": hcp_bucket, "key": key, "method": "put_object"})
        if route == "bulk presign":
            return api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": ["ok.txt", key], "method": "put_object"})
        if route == "multipart initiate":
            return api.post(f"/buckets/{hcp_bucket}/multipart/{path_key(key)}")
        if route == "multipart presign":
            return api.post(f"/buckets/{hcp_bucket}/multipart/{path_key(key)}/presign", json={"file_size": 10})
        return api.post(
            f"/buckets/{hcp_bucket}/objects/{path_key(key)}/copy",
            json={"source_bucket": hcp_bucket, "source_key": "src.txt"},
        )

    put_object(api, hcp_bucket, "src.txt", b"source")
    refused = call(LONG_KEY)
    assert refused.status_code == 400
    assert refused.json() == {"detail": f"object '{LONG_KEY}': Your key is too long"}
    assert call(LONGEST_KEY).status_code in (200, 201), "1,024 bytes is still a key"


def test_the_data_plane_refuses_a_long_key_with_s3s_xml(api: httpx.Client, hcp_bucket: str, hcp_emulator: HCPEmulator) -> None:
    """A URL signed for a long key anyway (by the test's boto3) is refused on S3's side too,
    with S3's XML error; nothing is stored."""
    url = hcp_emulator.s3.generate_presigned_url(
        "put_object", Params={"Bucket": hcp_bucket, "Key": LONG_KEY}, ExpiresIn=60
    )
    refused = httpx.put(url, content=b"data")
    assert refused.status_code == 400
    assert b"<Code>KeyTooLongError</Code>" in refused.content
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket).get("KeyCount") == 0
    ok = put_object(api, hcp_bucket, LONGEST_KEY, b"data")
    assert ok.status_code == 200


def test_open_uploads_are_dated_when_initiated_and_listed_max_uploads_at_a_time(
    api: httpx.Client, hcp_bucket: str
) -> None:
    """moto dates every upload 2010-11-10 and ignores MaxUploads; S3 does neither."""
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    for index in range(3):
        assert api.post(f"/buckets/{hcp_bucket}/multipart/stg/{index}.bin").status_code == 201
    page = api.get(f"/buckets/{hcp_bucket}/uploads", params={"prefix": "stg/", "max_uploads": 2}).json()
    assert len(page["uploads"]) == 2 and page["is_truncated"] is True
    every = api.get(f"/buckets/{hcp_bucket}/uploads", params={"prefix": "stg/"}).json()
    assert len(every["uploads"]) == 3 and every["is_truncated"] is False
    for upload in every["uploads"]:
        initiated = datetime.fromisoformat(upload["Initiated"].replace("Z", "+00:00"))
        assert before <= initiated <= datetime.now(timezone.utc) + timedelta(seconds=5), upload
