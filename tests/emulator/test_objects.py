"""Contract: object routes — list, head, delete, bulk delete, copy (hcp-api.md section 3) —
and keys with awkward characters (section 7)."""

from __future__ import annotations

import re

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator
from rahcp_prefect.testing.counter import LIST_OBJECTS as LIST_ROUTE

from .conftest import ISO_Z, QUOTED_ETAG, path_key, put_object


def _fill(emulator: HCPEmulator, bucket: str, keys: list[str]) -> None:
    for key in keys:
        emulator.s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def test_list_envelope_and_item_casing(api: httpx.Client, hcp_bucket: str) -> None:
    put_object(api, hcp_bucket, "dir/one.txt", b"12345")
    body = api.get(f"/buckets/{hcp_bucket}/objects").json()
    assert set(body) == {"objects", "common_prefixes", "is_truncated", "next_continuation_token", "key_count"}
    assert body["is_truncated"] is False
    assert body["next_continuation_token"] is None
    assert body["key_count"] == 1
    (item,) = body["objects"]
    assert set(item) == {"Key", "Size", "LastModified", "ETag", "StorageClass", "Owner"}
    assert set(item["Owner"]) == {"DisplayName", "ID"}
    assert item["Key"] == "dir/one.txt"
    assert item["Size"] == 5
    assert QUOTED_ETAG.match(item["ETag"])
    assert ISO_Z.match(item["LastModified"])


def test_list_pagination_one_call_per_page(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    keys = [f"p/{i:02d}" for i in range(5)]
    _fill(hcp_emulator, hcp_bucket, keys)
    hcp_emulator.reset_counts()
    seen: list[str] = []
    pages: list[dict] = []
    params: dict[str, object] = {"max_keys": 2}
    while True:
        page = api.get(f"/buckets/{hcp_bucket}/objects", params=params).json()
        pages.append(page)
        seen += [o["Key"] for o in page["objects"]]
        if not page["is_truncated"]:
            break
        params = {"max_keys": 2, "continuation_token": page["next_continuation_token"]}
    assert seen == keys
    assert [p["key_count"] for p in pages] == [2, 2, 1]
    assert isinstance(pages[0]["next_continuation_token"], str)
    assert pages[-1]["next_continuation_token"] is None
    assert hcp_emulator.request_counts[LIST_ROUTE] == 3


def test_list_delimiter_prefix_and_limits(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    _fill(hcp_emulator, hcp_bucket, ["top.txt", "a/1", "a/2", "b/c/3"])
    body = api.get(f"/buckets/{hcp_bucket}/objects", params={"delimiter": "/"}).json()
    assert body["common_prefixes"] == ["a/", "b/"]
    assert [o["Key"] for o in body["objects"]] == ["top.txt"]
    assert body["key_count"] == 3

    nested = api.get(f"/buckets/{hcp_bucket}/objects", params={"prefix": "b/", "delimiter": "/"}).json()
    assert nested["common_prefixes"] == ["b/c/"]
    only_a = api.get(f"/buckets/{hcp_bucket}/objects", params={"prefix": "a/"}).json()
    assert [o["Key"] for o in only_a["objects"]] == ["a/1", "a/2"]
    everything = api.get(f"/buckets/{hcp_bucket}/objects", params={"prefix": ""}).json()
    assert everything["key_count"] == 4

    zero = api.get(f"/buckets/{hcp_bucket}/objects", params={"max_keys": 0}).json()
    assert zero["objects"] == [] and zero["key_count"] == 0

    too_many = api.get(f"/buckets/{hcp_bucket}/objects", params={"max_keys": 1001})
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["query", "max_keys"]


def test_list_missing_bucket_is_404(api: httpx.Client) -> None:
    resp = api.get("/buckets/no-such-bucket-x/objects")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "bucket 'no-such-bucket-x': The specified bucket does not exist"}


def test_head_headers_exactly(api: httpx.Client, hcp_bucket: str) -> None:
    etag = put_object(api, hcp_bucket, "h/doc.txt", b"hello world", content_type="text/plain").headers["etag"]
    resp = api.head(f"/buckets/{hcp_bucket}/objects/h/doc.txt", headers={"X-Request-ID": "rid-1"})
    assert resp.status_code == 200
    assert resp.content == b""
    assert resp.headers["content-length"] == "11"
    assert resp.headers["content-type"] == "text/plain"
    assert resp.headers["etag"] == etag
    assert QUOTED_ETAG.match(resp.headers["etag"])
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00$", resp.headers["last-modified"])
    assert resp.headers["x-request-id"] == "rid-1"
    assert not any(h.startswith("x-amz-meta-") for h in resp.headers)


def test_head_missing_is_bare_404(api: httpx.Client, hcp_bucket: str) -> None:
    for path in (f"/buckets/{hcp_bucket}/objects/nope", "/buckets/no-such-bucket-x/objects/k"):
        resp = api.head(path)
        assert resp.status_code == 404
        assert resp.content == b""


def test_delete_is_idempotent_but_missing_bucket_is_404(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    _fill(hcp_emulator, hcp_bucket, ["d/x"])
    for _ in range(2):
        resp = api.delete(f"/buckets/{hcp_bucket}/objects/d/x")
        assert (resp.status_code, resp.json()) == (
            200,
            {"status": "deleted", "bucket": hcp_bucket, "key": "d/x"},
        )
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0
    assert api.delete("/buckets/no-such-bucket-x/objects/k").status_code == 404


def test_bulk_delete_keys_and_prefix(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    _fill(hcp_emulator, hcp_bucket, ["k1", "k2", "pre/a", "pre/b", "pre/c", "keep"])
    resp = api.post(
        f"/buckets/{hcp_bucket}/objects/delete",
        json={"keys": ["k1", "k2", "never-existed"], "prefix": "pre/"},
    )
    assert resp.status_code == 200
    assert resp.json() == {"status": "deleted", "deleted": 6, "errors": []}
    left = [o["Key"] for o in hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["Contents"]]
    assert left == ["keep"]

    empty = api.post(f"/buckets/{hcp_bucket}/objects/delete", json={})
    assert empty.json() == {"status": "deleted", "deleted": 0, "errors": []}
    everything = api.post(f"/buckets/{hcp_bucket}/objects/delete", json={"prefix": ""})
    assert everything.json()["deleted"] == 1
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0


def test_bulk_delete_chunks_beyond_1000_keys(api: httpx.Client, hcp_bucket: str) -> None:
    keys = [f"ghost/{i}" for i in range(1500)]
    resp = api.post(f"/buckets/{hcp_bucket}/objects/delete", json={"keys": keys})
    assert resp.json()["deleted"] == 1500


def test_bulk_delete_missing_bucket_is_404(api: httpx.Client) -> None:
    for body in ({}, {"keys": ["a"]}, {"prefix": "x/"}):
        resp = api.post("/buckets/no-such-bucket-x/objects/delete", json=body)
        assert resp.status_code == 404, body


def test_copy_and_missing_source_names_destination(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    _fill(hcp_emulator, hcp_bucket, ["src/x.txt"])
    resp = api.post(
        f"/buckets/{hcp_bucket}/objects/copied/x.txt/copy",
        json={"source_bucket": hcp_bucket, "source_key": "src/x.txt"},
    )
    assert (resp.status_code, resp.json()) == (
        200,
        {"status": "copied", "bucket": hcp_bucket, "key": "copied/x.txt"},
    )
    copied = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="copied/x.txt")["Body"].read()
    assert copied == b"src/x.txt"

    missing = api.post(
        f"/buckets/{hcp_bucket}/objects/copied/y.txt/copy",
        json={"source_bucket": hcp_bucket, "source_key": "src/nope.txt"},
    )
    assert missing.status_code == 404
    assert missing.json() == {"detail": "object 'copied/y.txt': The specified key does not exist."}
    assert api.post(f"/buckets/{hcp_bucket}/objects/z/copy", json={"source_bucket": hcp_bucket}).status_code == 422


WEIRD_KEYS = [
    "with space/file name.txt",
    "unicode/ü ñ 文件.bin",
    "query/q?x=1.txt",
    "hash/frag#ment.txt",
    "percent/100%25 and %41.txt",
    "plus/a+b.txt",
    "misc/semi;colon~tilde.txt",
]


@pytest.mark.parametrize("key", WEIRD_KEYS)
def test_awkward_keys_round_trip(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str, key: str
) -> None:
    data = key.encode()
    put_object(api, hcp_bucket, key, data)
    listed = api.get(f"/buckets/{hcp_bucket}/objects").json()
    assert [o["Key"] for o in listed["objects"]] == [key]

    head = api.head(f"/buckets/{hcp_bucket}/objects/{path_key(key)}")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))

    dest = "copy of/" + key
    copy = api.post(
        f"/buckets/{hcp_bucket}/objects/{path_key(dest)}/copy",
        json={"source_bucket": hcp_bucket, "source_key": key},
    )
    assert copy.json()["key"] == dest
    url = api.post("/presign", json={"bucket": hcp_bucket, "key": dest}).json()["url"]
    assert httpx.get(url).content == data

    deleted = api.delete(f"/buckets/{hcp_bucket}/objects/{path_key(key)}")
    assert deleted.json()["key"] == key
    remaining = [o["Key"] for o in hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["Contents"]]
    assert remaining == [dest]
