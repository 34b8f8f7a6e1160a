"""Ranged GETs on presigned URLs: answered from the stored object without copying all of it
(``testing/ranges.py``), byte for byte what S3 (moto) answers; other ranges are moto's own."""

from __future__ import annotations

import os

import httpx

from rahcp_prefect.testing import HCPEmulator


def _get_url(api: httpx.Client, bucket: str, key: str) -> str:
    return str(api.post("/presign", json={"bucket": bucket, "key": key, "method": "get_object"}).json()["url"])


def test_a_byte_range_is_the_stored_bytes(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    body = os.urandom(3 * 1024 * 1024 + 5)
    key = "dir/with space/r.bin"
    etag = hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=body)["ETag"]
    url = _get_url(api, hcp_bucket, key)
    answer = httpx.get(url, headers={"Range": "bytes=1048570-2097200"})
    assert answer.status_code == 206
    assert answer.content == body[1048570:2097201]
    assert answer.headers["Content-Range"] == f"bytes 1048570-2097200/{len(body)}"
    assert answer.headers["ETag"] == etag
    tail = httpx.get(url, headers={"Range": f"bytes={len(body) - 3}-{len(body) + 100}"})
    assert (tail.status_code, tail.content) == (206, body[-3:])
    # Suffix ranges and ranges past the end are left to moto: S3's own answers.
    suffix = httpx.get(url, headers={"Range": "bytes=-4"})
    assert (suffix.status_code, suffix.content) == (206, body[-4:])
    assert httpx.get(url, headers={"Range": f"bytes={len(body)}-{len(body) + 9}"}).status_code == 416
    assert hcp_emulator.request_counts[("data", "GET", "/{bucket}/{key}")] == 4


def test_a_range_of_a_missing_key_is_s3s_404(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    answer = httpx.get(_get_url(api, hcp_bucket, "absent"), headers={"Range": "bytes=0-9"})
    assert answer.status_code == 404 and b"NoSuchKey" in answer.content
