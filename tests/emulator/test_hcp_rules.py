"""Contract: HCP's namespace rules in the emulator's "hcp" mode (hcp-api.md section 11).

Writes go through presigned PUTs straight to the S3 server and through the API's routes; both
meet the rules. Settings are set through the MAPI routes users call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from xml.sax.saxutils import escape

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator
from rahcp_prefect.testing.namespace_rules import retention_until

from .conftest import put_object

MIB = 1024 * 1024
TENANT = "dev-ai"


@pytest.fixture
def hcp(hcp_emulator: HCPEmulator) -> Iterator[HCPEmulator]:
    """The session emulator in "hcp" mode (the fixture restores the default afterwards)."""
    hcp_emulator.mode = "hcp"
    yield hcp_emulator


def presigned_put(api: httpx.Client, bucket: str, key: str, data: bytes) -> httpx.Response:
    url = api.post("/presign", json={"bucket": bucket, "key": key, "method": "put_object"}).json()["url"]
    return httpx.put(url, content=data)


def copy(api: httpx.Client, bucket: str, key: str, source: str) -> httpx.Response:
    return api.post(f"/buckets/{bucket}/objects/{key}/copy", json={"source_bucket": bucket, "source_key": source})


def namespace(bucket: str, suffix: str = "") -> str:
    return f"/mapi/tenants/{TENANT}/namespaces/{bucket}{suffix}"


def multipart(api: httpx.Client, bucket: str, key: str, sizes: list[int]) -> tuple[str, list[dict]]:
    """Start an upload and send parts of ``sizes`` bytes; returns its id and the parts."""
    base = f"/buckets/{bucket}/multipart/{key}"
    upload_id = api.post(base).json()["upload_id"]
    urls = api.post(
        f"{base}/presign", json={"upload_id": upload_id, "file_size": len(sizes) * 5 * MIB, "part_size": 5 * MIB}
    ).json()["urls"]
    parts = []
    for entry, size in zip(urls, sizes):
        resp = httpx.put(entry["url"], content=bytes([entry["part_number"]]) * size)
        assert resp.status_code == 200, resp.text
        parts.append({"PartNumber": entry["part_number"], "ETag": resp.headers["etag"]})
    return upload_id, parts


def complete(api: httpx.Client, bucket: str, key: str, upload_id: str, parts: list[dict]) -> httpx.Response:
    return api.post(f"/buckets/{bucket}/multipart/{key}/complete", json={"upload_id": upload_id, "parts": parts})


# -- 409 onto existing keys -------------------------------------------------------------------


def test_presigned_put_onto_an_existing_key_is_409_and_stores_nothing(
    hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str
) -> None:
    assert presigned_put(api, hcp_bucket, "k", b"first").status_code == 200
    again = presigned_put(api, hcp_bucket, "k", b"second")
    assert again.status_code == 409
    assert b"<Code>Conflict</Code>" in again.content
    assert hcp.stored(hcp_bucket) == {"k": b"first"}


def test_copy_onto_an_existing_key_is_409_naming_the_destination(
    hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str
) -> None:
    put_object(api, hcp_bucket, "src", b"new")
    put_object(api, hcp_bucket, "dst", b"old")
    resp = copy(api, hcp_bucket, "dst", "src")
    assert resp.status_code == 409
    assert resp.json()["detail"].startswith("object 'dst': ")
    assert hcp.stored(hcp_bucket)["dst"] == b"old"
    assert copy(api, hcp_bucket, "fresh", "src").status_code == 200


def test_a_key_that_names_an_existing_folder_is_409(
    hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str
) -> None:
    put_object(api, hcp_bucket, "a/b/c.txt", b"x")
    assert presigned_put(api, hcp_bucket, "a", b"y").status_code == 409
    assert presigned_put(api, hcp_bucket, "a/b", b"y").status_code == 409
    assert presigned_put(api, hcp_bucket, "ab", b"y").status_code == 200
    # Once the folder is empty, the name is free.
    assert api.delete(f"/buckets/{hcp_bucket}/objects/a/b/c.txt").status_code == 200
    assert presigned_put(api, hcp_bucket, "a", b"y").status_code == 200


def test_complete_onto_an_existing_key_is_409(hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str) -> None:
    put_object(api, hcp_bucket, "big", b"old")
    upload_id, parts = multipart(api, hcp_bucket, "big", [MIB, 10])
    resp = complete(api, hcp_bucket, "big", upload_id, parts)
    assert resp.status_code == 409
    assert hcp.stored(hcp_bucket)["big"] == b"old"
    # An upload that is gone (e.g. a retried complete whose answer was lost) is a 404 first.
    assert api.post(f"/buckets/{hcp_bucket}/multipart/big/abort", json={"upload_id": upload_id}).status_code == 200
    assert complete(api, hcp_bucket, "big", upload_id, parts).status_code == 404


# -- versioning and the overwrite option ------------------------------------------------------


def test_versioned_namespace_stores_a_new_version(hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str) -> None:
    assert api.get(namespace(hcp_bucket, "/versioningSettings")).json() == {"enabled": False}
    assert api.post(namespace(hcp_bucket, "/versioningSettings"), json={"enabled": True}).status_code == 200
    put_object(api, hcp_bucket, "k", b"v1")
    assert presigned_put(api, hcp_bucket, "k", b"v2").status_code == 200
    put_object(api, hcp_bucket, "src", b"v3")
    assert copy(api, hcp_bucket, "k", "src").status_code == 200
    versions = hcp.s3.list_object_versions(Bucket=hcp_bucket, Prefix="k")["Versions"]
    assert len([v for v in versions if v["Key"] == "k"]) == 3
    assert hcp.stored(hcp_bucket)["k"] == b"v3"


def test_overwrite_option_replaces_the_object(hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str) -> None:
    put_object(api, hcp_bucket, "k", b"old")
    assert api.post(namespace(hcp_bucket), json={"overwriteEnabled": True}).status_code == 200
    assert api.get(namespace(hcp_bucket)).json()["overwriteEnabled"] is True
    assert presigned_put(api, hcp_bucket, "k", b"new").status_code == 200
    assert hcp.stored(hcp_bucket) == {"k": b"new"}
    versions = hcp.s3.list_object_versions(Bucket=hcp_bucket, Prefix="k").get("Versions", [])
    assert len(versions) == 1


# -- retention and holds ----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_default_retention_refuses_delete_and_overwrite_until_it_ends(
    hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str
) -> None:
    put_object(api, hcp_bucket, "before", b"stored before the retention was set")
    settings = {"retentionDefault": "+3s"}
    assert api.post(namespace(hcp_bucket, "/complianceSettings"), json=settings).status_code == 200
    assert api.get(namespace(hcp_bucket, "/complianceSettings")).json()["retentionDefault"] == "+3s"
    api.post(namespace(hcp_bucket), json={"overwriteEnabled": True})
    put_object(api, hcp_bucket, "staging/x", b"x")
    put_object(api, hcp_bucket, "staging/y", b"y")

    delete = api.delete(f"/buckets/{hcp_bucket}/objects/staging/x")
    assert delete.status_code == 403
    assert delete.json()["detail"] == "object 'staging/x': Access Denied"
    assert presigned_put(api, hcp_bucket, "staging/x", b"new").status_code == 403
    bulk = api.post(f"/buckets/{hcp_bucket}/objects/delete", json={"prefix": ""}).json()
    assert sorted(e["Key"] for e in bulk["errors"]) == ["staging/x", "staging/y"]
    assert {e["Code"] for e in bulk["errors"]} == {"AccessDenied"}
    assert set(hcp.stored(hcp_bucket)) == {"staging/x", "staging/y"}  # "before" was not retained
    hold = api.get(f"/buckets/{hcp_bucket}/objects/staging/x/hold").json()
    assert hold["hold"] is False and hold["retained_until"].endswith("Z")

    time.sleep(3.2)
    assert api.delete(f"/buckets/{hcp_bucket}/objects/staging/x").status_code == 200
    assert presigned_put(api, hcp_bucket, "staging/y", b"replaced").status_code == 200
    assert hcp.stored(hcp_bucket) == {"staging/y": b"replaced"}  # retained again, from now


def test_hold_refuses_delete_until_released(hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str) -> None:
    put_object(api, hcp_bucket, "final/a", b"a")
    held = api.post(f"/buckets/{hcp_bucket}/objects/final/a/hold", json={"hold": True})
    assert held.json() == {"status": "held", "bucket": hcp_bucket, "key": "final/a"}
    assert api.get(f"/buckets/{hcp_bucket}/objects/final/a/hold").json()["hold"] is True
    assert api.delete(f"/buckets/{hcp_bucket}/objects/final/a").status_code == 403
    api.post(namespace(hcp_bucket), json={"overwriteEnabled": True})
    assert presigned_put(api, hcp_bucket, "final/a", b"b").status_code == 403
    assert api.post(f"/buckets/{hcp_bucket}/objects/final/a/hold", json={"hold": False}).status_code == 200
    assert api.delete(f"/buckets/{hcp_bucket}/objects/final/a").status_code == 200
    assert hcp.stored(hcp_bucket) == {}
    assert api.post(f"/buckets/{hcp_bucket}/objects/gone/hold", json={"hold": True}).status_code == 404


def test_retention_values() -> None:
    assert retention_until("0", 100.0) is None
    assert retention_until(None, 100.0) is None
    assert retention_until("-1", 100.0) == math.inf
    assert retention_until("+1d2h3s", 100.0) == 100.0 + 86400 + 7200 + 3
    assert retention_until("+1y+1M", 0.0) == 395 * 86400
    assert retention_until("2030-01-01T00:00:00Z", 0.0) == 1893456000.0
    with pytest.raises(ValueError, match="'soon'"):
        retention_until("soon", 0.0)


def test_compliance_settings_refuse_a_retention_hcp_would_not_parse(
    hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str
) -> None:
    resp = api.post(namespace(hcp_bucket, "/complianceSettings"), json={"retentionDefault": "one year"})
    assert resp.status_code == 400
    assert "one year" in resp.json()["detail"]
    assert api.get(namespace("no-such-bucket-or-namespace", "/complianceSettings")).status_code == 404


# -- CompleteMultipartUpload ------------------------------------------------------------------


def _raw_complete(emu: HCPEmulator, bucket: str, key: str, upload_id: str, parts: list[dict]) -> httpx.Response:
    url = emu.s3.generate_presigned_url(
        "complete_multipart_upload", Params={"Bucket": bucket, "Key": key, "UploadId": upload_id}
    )
    body = "".join(
        f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{escape(p['ETag'])}</ETag></Part>" for p in parts
    )
    return httpx.post(url, content=f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>")


def test_complete_errors_are_200_with_an_error_body_on_s3_and_400_on_the_api(
    hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str
) -> None:
    upload_id, parts = multipart(api, hcp_bucket, "small", [MIB // 2, 10])
    raw = _raw_complete(hcp, hcp_bucket, "small", upload_id, parts)
    assert raw.status_code == 200
    assert b"<Code>EntityTooSmall</Code>" in raw.content
    resp = complete(api, hcp_bucket, "small", upload_id, parts)
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith("object 'small': Your proposed upload is smaller")

    wrong = [parts[0], {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]
    raw = _raw_complete(hcp, hcp_bucket, "small", upload_id, wrong)
    assert raw.status_code == 200 and b"<Code>InvalidPart</Code>" in raw.content
    upload_id, parts = multipart(api, hcp_bucket, "order", [MIB, MIB])
    raw = _raw_complete(hcp, hcp_bucket, "order", upload_id, parts[::-1])
    assert raw.status_code == 200 and b"<Code>InvalidPartOrder</Code>" in raw.content
    assert complete(api, hcp_bucket, "order", upload_id, parts[::-1]).status_code == 400
    assert hcp.stored(hcp_bucket) == {}


def test_parts_of_1_mib_complete_on_hcp_not_on_plain_s3(
    hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str
) -> None:
    upload_id, parts = multipart(api, hcp_bucket, "one-mib", [MIB, MIB, 10])
    resp = complete(api, hcp_bucket, "one-mib", upload_id, parts)
    assert resp.status_code == 200, resp.text
    assert resp.json()["etag"].endswith('-3"')
    assert len(hcp.stored(hcp_bucket)["one-mib"]) == 2 * MIB + 10

    hcp.mode = "s3"
    upload_id, parts = multipart(api, hcp_bucket, "s3-parts", [MIB, 10])
    resp = complete(api, hcp_bucket, "s3-parts", upload_id, parts)
    assert resp.status_code == 400
    assert "smaller than the minimum" in resp.json()["detail"]


# -- the permissive mode and the operator's hand ----------------------------------------------


def test_s3_mode_is_plain_permissive_s3(hcp_s3_mode: HCPEmulator, api: httpx.Client, hcp_bucket: str) -> None:
    hcp_s3_mode.configure_namespace(hcp_bucket, retention="-1")
    put_object(api, hcp_bucket, "a/b", b"1")
    assert presigned_put(api, hcp_bucket, "a/b", b"2").status_code == 200
    assert presigned_put(api, hcp_bucket, "a", b"3").status_code == 200
    assert api.delete(f"/buckets/{hcp_bucket}/objects/a/b").status_code == 200
    assert hcp_s3_mode.stored(hcp_bucket) == {"a": b"3"}


def test_the_test_helper_client_is_never_refused(hcp: HCPEmulator, hcp_bucket: str) -> None:
    hcp.configure_namespace(hcp_bucket, retention="-1")
    hcp.s3.put_object(Bucket=hcp_bucket, Key="k", Body=b"1")
    hcp.s3.put_object(Bucket=hcp_bucket, Key="k", Body=b"2")
    hcp.s3.delete_object(Bucket=hcp_bucket, Key="k")
    assert hcp.stored(hcp_bucket) == {}


def test_mapi_knows_an_existing_bucket_as_a_namespace(hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str) -> None:
    ns = api.get(namespace(hcp_bucket))
    assert ns.status_code == 200 and ns.json()["name"] == hcp_bucket
    assert api.head(namespace(hcp_bucket)).status_code == 200
    assert api.get(namespace(hcp_bucket, "/complianceSettings")).json()["retentionDefault"] == "0"


# -- the listing cache ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_listing_cache_misses_presigned_puts_until_it_expires(hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    with HCPEmulator(mode="hcp", cache_ttl=1.5) as cached:
        token = cached.issue_token("tester", TENANT)
        with httpx.Client(base_url=cached.base_url, headers={"Authorization": f"Bearer {token}"}) as api:
            assert httpx.get(f"{cached.root_url}/health").json()["cache"] == "connected"
            listing = f"/buckets/{hcp_bucket}/objects"
            assert api.get(listing).json()["objects"] == []
            assert api.head(f"{listing}/fresh").status_code == 404  # 404s are not cached
            put_object(api, hcp_bucket, "fresh", b"12345")
            assert api.get(listing).json()["objects"] == []  # stale: the PUT bypassed the API
            assert api.head(f"{listing}/fresh").headers["content-length"] == "5"
            time.sleep(1.6)
            assert [o["Key"] for o in api.get(listing).json()["objects"]] == ["fresh"]

            # A write through the API invalidates: the copy's destination shows at once.
            assert copy(api, hcp_bucket, "copied", "fresh").status_code == 200
            assert [o["Key"] for o in api.get(listing).json()["objects"]] == ["copied", "fresh"]
            # HEADs live 2.5 times as long and a presigned overwrite does not refresh them.
            api.post(namespace(hcp_bucket), json={"overwriteEnabled": True})
            assert presigned_put(api, hcp_bucket, "fresh", b"1234567").status_code == 200
            assert api.head(f"{listing}/fresh").headers["content-length"] == "5"
            time.sleep(2.3)
            assert api.head(f"{listing}/fresh").headers["content-length"] == "7"


def test_no_cache_by_default(hcp: HCPEmulator, api: httpx.Client, hcp_bucket: str) -> None:
    assert httpx.get(f"{hcp.root_url}/health").json()["cache"] == "disabled"
    assert api.get(f"/buckets/{hcp_bucket}/objects").json()["objects"] == []
    put_object(api, hcp_bucket, "fresh", b"x")
    assert [o["Key"] for o in api.get(f"/buckets/{hcp_bucket}/objects").json()["objects"]] == ["fresh"]
