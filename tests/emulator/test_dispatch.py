"""The data plane hands each request straight to moto's S3 (``testing.s3dispatch``): moto's
own search for the service of every request (a directory listing of its modules) was half
the CPU of a small GET."""

from __future__ import annotations

import uuid

import httpx
import pytest
from moto import backends

from rahcp_prefect.testing import HCPEmulator


def test_s3_requests_skip_the_service_search_and_moto_api_still_answers(
    hcp_emulator: HCPEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = hcp_emulator.s3
    bucket = hcp_emulator.create_bucket(f"dispatch-{uuid.uuid4().hex[:8]}")
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")  # moto's S3 app exists from here
    searches = []
    real = backends.list_of_moto_modules
    monkeypatch.setattr(backends, "list_of_moto_modules", lambda: searches.append(1) or real())
    for _ in range(20):
        assert s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a/b.txt"})
    assert httpx.get(url).content == b"hello"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/b.txt"]
    assert searches == []
    # moto's own API is routed the long way, as moto's server does (its config: read-only, and
    # unlike data.json it does not walk every bucket while other tests delete theirs)
    answer = httpx.get(f"{hcp_emulator.s3_endpoint}/moto-api/config")
    assert answer.status_code == 201 and "batch" in answer.json(), answer.text
