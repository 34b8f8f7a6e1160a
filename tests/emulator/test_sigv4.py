"""The emulator's fast presigner makes exactly boto3's URLs, and they work against S3."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from rahcp_prefect.testing.sigv4 import HTTP_METHODS, QueryPresigner

KEYS = [
    "a.txt",
    "dir/sub/f 1.bin",
    "ü/ñ.txt",
    "q?x#y%z+w",
    "~tilde/a=b&c",
    "//lead",
    "emoji/😀",
    "semi;colon,comma'quote(p)*!$@",
]


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:45678", "https://s3.example.test:9443/base"])
@pytest.mark.parametrize("method", sorted(HTTP_METHODS))
def test_same_url_as_boto3(endpoint: str, method: str) -> None:
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t",
        region_name="eu-north-1", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    signer = QueryPresigner(endpoint, "AKIDEXAMPLE", "s3cr3t", "eu-north-1")
    for key in KEYS:
        expected = client.generate_presigned_url(method, Params={"Bucket": "bk", "Key": key}, ExpiresIn=900)
        stamp = re.search(r"X-Amz-Date=(\d{8}T\d{6}Z)", expected)
        assert stamp is not None
        now = datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        assert signer.presign(method, "bk", key, 900, now=now) == expected, key


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="upload_part"):
        QueryPresigner("http://h:1", "a", "b", "us-east-1").presign("upload_part", "b", "k", 60)


def test_emulator_urls_round_trip_odd_keys(hcp_emulator: Any, hcp_bucket: str) -> None:
    signer = hcp_emulator.s3  # boto3, to read back what the fast URLs wrote
    presigner = QueryPresigner(hcp_emulator.s3_endpoint, "testing", "testing", "us-east-1")
    with httpx.Client() as http:
        for index, key in enumerate(KEYS[:5]):
            put = http.put(presigner.presign("put_object", hcp_bucket, key, 60), content=f"v{index}".encode())
            assert put.status_code == 200, (key, put.text)
            assert signer.get_object(Bucket=hcp_bucket, Key=key)["Body"].read() == f"v{index}".encode()


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:45678", "https://s3.example.test:9443/base"])
def test_listing_url_signed_like_boto3(endpoint: str) -> None:
    """Same canonical request as boto3's presigned ListObjectsV2 (so the same signature)."""
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t",
        region_name="eu-north-1", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    signer = QueryPresigner(endpoint, "AKIDEXAMPLE", "s3cr3t", "eu-north-1")
    for prefix in ("", "dir/sub/", "q?x#y%z+w/", "ü ñ/"):
        params = {"Bucket": "bk", "MaxKeys": 1000, "Delimiter": "/", "ContinuationToken": "tok+/=", "FetchOwner": True}
        if prefix:
            params["Prefix"] = prefix
        expected = client.generate_presigned_url("list_objects_v2", Params=params, ExpiresIn=60)
        stamp = re.search(r"X-Amz-Date=(\d{8}T\d{6}Z)", expected)
        assert stamp is not None
        now = datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        ours = {
            "list-type": "2", "max-keys": "1000", "delimiter": "/", "continuation-token": "tok+/=",
            "fetch-owner": "true", "encoding-type": "url", **({"prefix": prefix} if prefix else {}),
        }
        url = signer.presign_list("bk", ours, 60, now=now)
        assert url.split("?")[0] == expected.split("?")[0]
        assert sorted(url.split("?")[1].split("&")) == sorted(expected.split("?")[1].split("&")), prefix
