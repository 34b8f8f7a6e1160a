"""Contract: bucket routes (hcp-api.md section 2)."""

from __future__ import annotations

import uuid

import httpx

from rahcp_prefect.testing import HCPEmulator

from .conftest import ISO_Z, put_object


def _name() -> str:
    return f"bk-{uuid.uuid4().hex[:12]}"


def test_create_list_head_delete(api: httpx.Client, hcp_emulator: HCPEmulator) -> None:
    name = _name()
    created = api.post("/buckets", json={"bucket": name})
    assert (created.status_code, created.json()) == (201, {"status": "created", "bucket": name})

    listing = api.get("/buckets").json()
    assert set(listing) == {"buckets", "owner"}
    assert set(listing["owner"]) == {"DisplayName", "ID"}
    entry = next(b for b in listing["buckets"] if b["Name"] == name)
    assert set(entry) == {"Name", "CreationDate"}
    assert ISO_Z.match(entry["CreationDate"])

    head = api.head(f"/buckets/{name}")
    assert head.status_code == 200 and head.content == b""

    deleted = api.delete(f"/buckets/{name}")
    assert (deleted.status_code, deleted.json()) == (200, {"status": "deleted", "bucket": name})
    missing = api.head(f"/buckets/{name}")
    assert missing.status_code == 404 and missing.content == b""


def test_create_existing_is_409_and_bad_name_is_400(api: httpx.Client, hcp_bucket: str) -> None:
    again = api.post("/buckets", json={"bucket": hcp_bucket})
    assert again.status_code == 409
    assert again.json()["detail"].startswith(f"bucket '{hcp_bucket}': ")
    bad = api.post("/buckets", json={"bucket": "Bad_Name"})
    assert bad.status_code == 400
    assert bad.json() == {"detail": "bucket 'Bad_Name': The specified bucket is not valid."}
    assert api.post("/buckets", json={}).status_code == 422


def test_delete_non_empty_is_409_unless_forced(
    api: httpx.Client, hcp_emulator: HCPEmulator
) -> None:
    name = _name()
    api.post("/buckets", json={"bucket": name})
    put_object(api, name, "a/b.txt", b"data")
    api.post(f"/buckets/{name}/multipart/open-upload")  # an unfinished multipart upload
    refused = api.delete(f"/buckets/{name}")
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"bucket '{name}': ")

    forced = api.delete(f"/buckets/{name}", params={"force": "true"})
    assert (forced.status_code, forced.json()) == (200, {"status": "deleted", "bucket": name})
    names = [b["Name"] for b in hcp_emulator.s3.list_buckets()["Buckets"]]
    assert name not in names


def test_delete_missing_bucket_is_404_even_with_force(api: httpx.Client) -> None:
    for params in ({}, {"force": "true"}):
        resp = api.delete("/buckets/no-such-bucket-here", params=params)
        assert resp.status_code == 404
        assert resp.json() == {"detail": "bucket 'no-such-bucket-here': The specified bucket does not exist"}
