"""Contract: POST /presign and bulk presign (hcp-api.md section 4); data never via the API."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator


def test_single_presign_shape_and_target(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    resp = api.post("/presign", json={"bucket": hcp_bucket, "key": "a/b c.txt", "method": "put_object", "expires_in": 120})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"url", "bucket", "key", "expires_in", "method"}
    assert (body["bucket"], body["key"], body["expires_in"], body["method"]) == (
        hcp_bucket,
        "a/b c.txt",
        120,
        "put_object",
    )
    parts = urlsplit(body["url"])
    assert body["url"].startswith(f"{hcp_emulator.s3_endpoint}/{hcp_bucket}/a/b%20c.txt?")
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["120"]
    assert query["X-Amz-SignedHeaders"] == ["host"]

    default = api.post("/presign", json={"bucket": hcp_bucket, "key": "k"}).json()
    assert (default["method"], default["expires_in"]) == ("get_object", 3600)


def test_presigned_put_and_get_go_straight_to_s3(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    hcp_emulator.reset_counts()
    put = api.post("/presign", json={"bucket": hcp_bucket, "key": "direct.bin", "method": "put_object"}).json()
    get = api.post("/presign", json={"bucket": hcp_bucket, "key": "direct.bin"}).json()
    payload = bytes(range(256)) * 100
    assert httpx.put(put["url"], content=payload, headers={"Content-Type": "image/png"}).status_code == 200
    fetched = httpx.get(get["url"])
    assert fetched.content == payload
    assert fetched.headers["content-type"] == "image/png"
    counts = hcp_emulator.request_counts
    assert counts[("data", "PUT", "/{bucket}/{key}")] == 1
    assert counts[("data", "GET", "/{bucket}/{key}")] == 1
    assert {k for k in counts if k[0] == "api"} == {("api", "POST", "/presign")}


@pytest.mark.parametrize("expires_in", [0, -1, 604801])
def test_presign_expiry_bounds(api: httpx.Client, expires_in: int) -> None:
    resp = api.post("/presign", json={"bucket": "b", "key": "k", "expires_in": expires_in})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "expires_in"]


def test_presign_expiry_limits_are_inclusive(api: httpx.Client) -> None:
    for expires_in in (1, 604800):
        assert api.post("/presign", json={"bucket": "b", "key": "k", "expires_in": expires_in}).status_code == 200


def test_presign_unknown_method_is_string_422(api: httpx.Client) -> None:
    resp = api.post("/presign", json={"bucket": "b", "key": "k", "method": "delete_object"})
    assert resp.status_code == 422
    assert resp.json() == {"detail": "method must be one of: get_object, put_object"}


def test_presign_signs_without_touching_s3(api: httpx.Client, hcp_emulator: HCPEmulator) -> None:
    hcp_emulator.reset_counts()
    resp = api.post("/presign", json={"bucket": "no-such-bucket-x", "key": "k"})
    assert resp.status_code == 200
    assert not [k for k in hcp_emulator.request_counts if k[0] in ("backend", "data")]


def test_bulk_presign_in_request_order(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    keys = [f"bulk/{i:03d}-{'z' if i % 2 else 'a'}.txt" for i in range(50)][::-1] + ["bulk/ü ?#.txt"]
    resp = api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": keys, "method": "put_object", "expires_in": 600})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"urls", "expires_in"}
    assert body["expires_in"] == 600
    assert [u["key"] for u in body["urls"]] == keys
    assert all(set(u) == {"key", "url"} for u in body["urls"])
    last = body["urls"][-1]
    assert httpx.put(last["url"], content=b"x").status_code == 200
    assert hcp_emulator.s3.head_object(Bucket=hcp_bucket, Key="bulk/ü ?#.txt")["ContentLength"] == 1
    assert hcp_emulator.request_counts[("api", "POST", "/buckets/{bucket}/objects/presign")] == 1


def test_bulk_presign_head_and_delete_methods(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="hd", Body=b"12")
    for method, verb in (("head_object", "HEAD"), ("delete_object", "DELETE")):
        url = api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": ["hd"], "method": method}).json()["urls"][0]["url"]
        resp = httpx.request(verb, url)
        assert resp.status_code in (200, 204), (method, resp.status_code)
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0


def test_bulk_presign_validation(api: httpx.Client, hcp_bucket: str) -> None:
    empty = api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "keys"]
    bogus = api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": ["a"], "method": "bogus"})
    assert bogus.status_code == 422
    assert isinstance(bogus.json()["detail"], str)
    assert "get_object" in bogus.json()["detail"]
    expiry = api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": ["a"], "expires_in": 604801})
    assert expiry.status_code == 422


def _backdate(url: str, seconds: int) -> str:
    """The URL as if signed ``seconds`` ago (moto checks no signature, so it stays usable)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    query["X-Amz-Date"] = (signed - timedelta(seconds=seconds)).strftime("%Y%m%dT%H%M%SZ")
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_expired_presigned_urls_get_s3s_403(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="old", Body=b"data")
    get = api.post("/presign", json={"bucket": hcp_bucket, "key": "old", "expires_in": 60}).json()["url"]
    assert httpx.get(_backdate(get, 59)).status_code == 200
    expired = httpx.get(_backdate(get, 61))
    assert expired.status_code == 403
    assert expired.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.text
    assert httpx.head(_backdate(get, 61)).status_code == 403

    put = api.post("/presign", json={"bucket": hcp_bucket, "key": "new", "method": "put_object", "expires_in": 1}).json()["url"]
    time.sleep(2.1)
    assert httpx.put(put, content=b"x" * 100_000).status_code == 403
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket, Prefix="new")["KeyCount"] == 0


def test_moto_itself_does_not_enforce_presigned_expiry(api: httpx.Client, hcp_bucket: str) -> None:
    """moto 5.2.5 ignores X-Amz-Expires (real S3/HCP answer 403), hence the emulator's own check.

    A tripwire: it fails when moto starts enforcing expiry, and the emulator's check can go.
    """
    with HCPEmulator(enforce_presign_expiry=False) as raw:
        raw.s3.put_object(Bucket=hcp_bucket, Key="old", Body=b"still here")  # same moto state
        url = raw.s3.generate_presigned_url("get_object", Params={"Bucket": hcp_bucket, "Key": "old"}, ExpiresIn=60)
        assert httpx.get(_backdate(url, 3600)).content == b"still here"
