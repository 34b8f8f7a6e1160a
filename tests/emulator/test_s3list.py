"""The emulator's own ListObjectsV2 client returns exactly the page boto3 returns."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from rahcp_prefect.testing.s3list import S3Lister
from rahcp_prefect.testing.s3server import INTERNAL_USER_AGENT
from rahcp_prefect.testing.sigv4 import QueryPresigner

KEYS = [
    "a.txt", "dir/sub/f 1.bin", "dir/x+y.bin", "ü/ñ.txt", "q?x#y%z+w", "~t/a=b&c", "sp ace/k", "emoji/😀",
    "amp&lt;/k", "ctl\x01key",
]

ROUTE_FIELDS = ("Key", "LastModified", "ETag", "Size", "StorageClass", "Owner")
"""What the emulator's routes read of a listed object (not boto3's checksum fields)."""


@pytest.fixture
def lister(hcp_emulator: Any) -> S3Lister:
    endpoint = hcp_emulator.s3_endpoint
    return S3Lister(QueryPresigner(endpoint, "testing", "testing", "us-east-1"), endpoint, INTERNAL_USER_AGENT)


def _boto3_page(hcp_emulator: Any, **params: Any) -> dict[str, Any]:
    page = hcp_emulator.s3.list_objects_v2(**params)
    for unused in ("ResponseMetadata", "Name", "MaxKeys", "EncodingType", "Prefix", "Delimiter", "ContinuationToken"):
        page.pop(unused, None)
    page["Contents"] = [
        {name: item[name] for name in ROUTE_FIELDS if name in item} for item in page.get("Contents", [])
    ]
    page.setdefault("CommonPrefixes", [])
    return page


def test_pages_equal_boto3_for_odd_keys(hcp_emulator: Any, hcp_bucket: str, lister: S3Lister) -> None:
    for key in KEYS:
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=key.encode())
    cases: list[dict[str, Any]] = [
        {}, {"Prefix": "dir/"}, {"Delimiter": "/"}, {"Prefix": "ü/", "Delimiter": "/"}, {"MaxKeys": 3},
        {"Prefix": "q?x#"}, {"Prefix": "sp ace/"}, {"FetchOwner": True},
    ]
    for case in cases:
        ours = lister.list_objects_v2(Bucket=hcp_bucket, **case)
        assert ours == _boto3_page(hcp_emulator, Bucket=hcp_bucket, **case), case
    # the continuation token of our page works on the next call, and pages add up to every key
    seen: list[str] = []
    token = None
    while True:
        page = lister.list_objects_v2(Bucket=hcp_bucket, MaxKeys=4, **({"ContinuationToken": token} if token else {}))
        seen += [item["Key"] for item in page["Contents"]]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == sorted(KEYS)


def test_missing_bucket_raises_boto3s_error(hcp_emulator: Any, lister: S3Lister) -> None:
    with pytest.raises(ClientError) as caught:
        lister.list_objects_v2(Bucket="no-such-bucket-here")
    assert caught.value.response["Error"]["Code"] == "NoSuchBucket"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_counted_as_the_emulators_own_requests(hcp_emulator: Any, hcp_bucket: str, lister: S3Lister) -> None:
    """Internal traffic: counted as plane "backend", never hit by data-plane faults."""
    hcp_emulator.faults.add("data", status=500, count=None)
    hcp_emulator.reset_counts()
    assert lister.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0
    planes = {plane for plane, _method, _route in hcp_emulator.request_counts}
    assert planes == {"backend"}
