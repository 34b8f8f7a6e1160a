"""Contract: multipart routes with presigned parts (hcp-api.md section 4 "Multipart")."""

from __future__ import annotations

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator

from .conftest import QUOTED_ETAG

MIB = 1024 * 1024
BASE = "/buckets/{b}/multipart/{k}"


def _put_parts(urls: list[dict], data: bytes, part_size: int) -> list[dict]:
    parts = []
    for entry in urls:
        n = entry["part_number"]
        resp = httpx.put(entry["url"], content=data[(n - 1) * part_size : n * part_size])
        assert resp.status_code == 200, resp.text
        assert QUOTED_ETAG.match(resp.headers["etag"])
        parts.append({"PartNumber": n, "ETag": resp.headers["etag"]})
    return parts


def test_full_flow_through_presigned_parts(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    key = "big dir/ü file.bin"
    base = BASE.format(b=hcp_bucket, k=key)
    data = bytes(range(256)) * (11 * MIB // 256)

    init = api.post(base)
    assert init.status_code == 201
    upload_id = init.json()["upload_id"]
    assert init.json() == {"bucket": hcp_bucket, "key": key, "upload_id": upload_id}

    presigned = api.post(f"{base}/presign", json={"upload_id": upload_id, "file_size": len(data), "part_size": 5 * MIB})
    assert presigned.status_code == 200
    body = presigned.json()
    assert set(body) == {"bucket", "key", "upload_id", "part_size", "total_parts", "urls", "expires_in"}
    assert (body["upload_id"], body["part_size"], body["total_parts"], body["expires_in"]) == (upload_id, 5 * MIB, 3, 3600)
    assert [u["part_number"] for u in body["urls"]] == [1, 2, 3]
    assert all(u["url"].startswith(hcp_emulator.s3_endpoint) for u in body["urls"])

    hcp_emulator.reset_counts()
    parts = _put_parts(body["urls"], data, body["part_size"])
    assert hcp_emulator.request_counts[("data", "PUT", "/{bucket}/{key}?partNumber")] == 3

    listed = api.get(f"{base}/parts", params={"upload_id": upload_id}).json()
    assert set(listed) == {"bucket", "key", "upload_id", "parts", "is_truncated"}
    assert [set(p) for p in listed["parts"]] == [{"PartNumber", "ETag", "Size", "LastModified"}] * 3
    assert [p["Size"] for p in listed["parts"]] == [5 * MIB, 5 * MIB, MIB]

    uploads = api.get(f"/buckets/{hcp_bucket}/uploads").json()
    assert set(uploads) == {"bucket", "uploads", "is_truncated"}
    (upload,) = uploads["uploads"]
    assert set(upload) == {"Key", "UploadId", "Initiated", "StorageClass"}
    assert (upload["Key"], upload["UploadId"]) == (key, upload_id)

    done = api.post(f"{base}/complete", json={"upload_id": upload_id, "parts": parts})
    assert done.status_code == 200
    assert done.json()["bucket"] == hcp_bucket and done.json()["key"] == key
    assert QUOTED_ETAG.match(done.json()["etag"]) and done.json()["etag"].endswith('-3"')
    head = hcp_emulator.s3.head_object(Bucket=hcp_bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert api.get(f"/buckets/{hcp_bucket}/uploads").json()["uploads"] == []


def test_one_step_presign_creates_the_upload(api: httpx.Client, hcp_bucket: str) -> None:
    base = BASE.format(b=hcp_bucket, k="one-step")
    body = api.post(f"{base}/presign", json={"file_size": 1}).json()
    assert body["total_parts"] == 1 and body["part_size"] == 26214400
    (upload,) = api.get(f"/buckets/{hcp_bucket}/uploads").json()["uploads"]
    assert upload["UploadId"] == body["upload_id"]
    parts = _put_parts(body["urls"], b"z", body["part_size"])
    done = api.post(f"{base}/complete", json={"upload_id": body["upload_id"], "parts": parts})
    assert done.json()["etag"].endswith('-1"')


def test_too_many_parts_is_400_and_creates_nothing(api: httpx.Client, hcp_bucket: str) -> None:
    resp = api.post(f"{BASE.format(b=hcp_bucket, k='huge')}/presign", json={"file_size": 10_001 * 5 * MIB, "part_size": 5 * MIB})
    assert resp.status_code == 400
    assert resp.json() == {
        "detail": "Too many parts (10001). Increase part_size or reduce file_size. S3 maximum is 10,000 parts."
    }
    assert api.get(f"/buckets/{hcp_bucket}/uploads").json()["uploads"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"file_size": 0}, "file_size"),
        ({"file_size": 10, "part_size": 5 * MIB - 1}, "part_size"),
        ({"file_size": 10, "part_size": 5 * 1024 * MIB + 1}, "part_size"),
        ({"file_size": 10, "expires_in": 59}, "expires_in"),
        ({"file_size": 10, "expires_in": 43201}, "expires_in"),
    ],
)
def test_presign_parts_validation(api: httpx.Client, hcp_bucket: str, body: dict, field: str) -> None:
    resp = api.post(f"{BASE.format(b=hcp_bucket, k='v')}/presign", json=body)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", field]


def test_complete_requires_pascal_case_parts(api: httpx.Client, hcp_bucket: str) -> None:
    base = BASE.format(b=hcp_bucket, k="snake")
    upload_id = api.post(base).json()["upload_id"]
    resp = api.post(f"{base}/complete", json={"upload_id": upload_id, "parts": [{"part_number": 1, "etag": '"x"'}]})
    assert resp.status_code == 422
    locs = [e["loc"] for e in resp.json()["detail"]]
    assert ["body", "parts", 0, "PartNumber"] in locs and ["body", "parts", 0, "ETag"] in locs


def test_complete_errors(api: httpx.Client, hcp_bucket: str) -> None:
    base = BASE.format(b=hcp_bucket, k="errs")
    body = api.post(f"{base}/presign", json={"file_size": 2, "part_size": 5 * MIB}).json()
    upload_id = body["upload_id"]
    parts = _put_parts(body["urls"], b"ab", body["part_size"])

    assert api.post(f"{base}/complete", json={"upload_id": upload_id, "parts": []}).status_code == 400
    wrong = api.post(f"{base}/complete", json={"upload_id": upload_id, "parts": [{"PartNumber": 1, "ETag": '"0000"'}]})
    assert wrong.status_code == 400
    unknown = api.post(f"{base}/complete", json={"upload_id": "bogus-id", "parts": parts})
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("object 'errs': ")


def test_small_first_part_is_entity_too_small(api: httpx.Client, hcp_bucket: str) -> None:
    base = BASE.format(b=hcp_bucket, k="small")
    body = api.post(f"{base}/presign", json={"file_size": 10 * MIB, "part_size": 5 * MIB}).json()
    parts = [
        {"PartNumber": u["part_number"], "ETag": httpx.put(u["url"], content=b"tiny").headers["etag"]}
        for u in body["urls"]
    ]
    resp = api.post(f"{base}/complete", json={"upload_id": body["upload_id"], "parts": parts})
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith("object 'small': ")


def test_abort_then_abort_again_is_404(api: httpx.Client, hcp_bucket: str) -> None:
    base = BASE.format(b=hcp_bucket, k="ab")
    upload_id = api.post(base).json()["upload_id"]
    first = api.post(f"{base}/abort", json={"upload_id": upload_id})
    assert (first.status_code, first.json()) == (200, {"status": "aborted"})
    assert api.post(f"{base}/abort", json={"upload_id": upload_id}).status_code == 404
    assert api.get(f"/buckets/{hcp_bucket}/uploads").json()["uploads"] == []


def test_list_uploads_prefix_and_bounds(api: httpx.Client, hcp_bucket: str) -> None:
    for key in ("x/1", "x/2", "y/1"):
        api.post(BASE.format(b=hcp_bucket, k=key))
    xs = api.get(f"/buckets/{hcp_bucket}/uploads", params={"prefix": "x/"}).json()["uploads"]
    assert sorted(u["Key"] for u in xs) == ["x/1", "x/2"]
    assert api.get(f"/buckets/{hcp_bucket}/uploads", params={"max_uploads": 0}).status_code == 422
    assert api.get(f"/buckets/{hcp_bucket}/uploads", params={"max_uploads": 1001}).status_code == 422
