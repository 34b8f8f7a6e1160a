"""The metadata-only store (``HCPEmulator(store="metadata")``): S3's answers without the bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator
from rahcp_prefect.testing.routes_multipart import MIN_PART
from rahcp_prefect.testing.sortedkeys import SortedKeys

from .conftest import QUOTED_ETAG, login, path_key, put_object


@pytest.fixture(scope="module")
def meta_emulator() -> Iterator[HCPEmulator]:
    with HCPEmulator(store="metadata") as emu:
        yield emu


@pytest.fixture
def meta_api(meta_emulator: HCPEmulator) -> Iterator[httpx.Client]:
    token = login(meta_emulator.base_url, tenant="dev-ai")
    with httpx.Client(base_url=meta_emulator.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client


@pytest.fixture
def bucket(meta_api: httpx.Client, request: pytest.FixtureRequest) -> str:
    name = f"meta-{abs(hash(request.node.name)) % 10**8}"
    assert meta_api.post("/buckets", json={"bucket": name}).status_code in (200, 201)
    return name


def _keys(api: httpx.Client, bucket: str, **params: object) -> list[str]:
    seen: list[str] = []
    query: dict[str, object] = dict(params)
    while True:
        page = api.get(f"/buckets/{bucket}/objects", params=query).json()
        seen += [o["Key"] for o in page["objects"]] + page["common_prefixes"]
        if not page["is_truncated"]:
            return seen
        query["continuation_token"] = page["next_continuation_token"]


def test_upload_keeps_size_and_etag_and_drops_the_bytes(meta_api: httpx.Client, meta_emulator: HCPEmulator, bucket: str) -> None:
    data = b"hello metadata"
    resp = put_object(meta_api, bucket, "a/one.txt", data)
    assert resp.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    head = meta_api.head(f"/buckets/{bucket}/objects/{path_key('a/one.txt')}")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"] == resp.headers["etag"]
    (item,) = meta_api.get(f"/buckets/{bucket}/objects").json()["objects"]
    assert item["Size"] == len(data) and QUOTED_ETAG.match(item["ETag"])
    # GET answers zeros of the object's length: the bytes were never kept.
    url = meta_api.post("/presign", json={"bucket": bucket, "key": "a/one.txt", "method": "get_object"}).json()["url"]
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == bytes(len(data))
    ranged = httpx.get(url, headers={"Range": "bytes=2-5"})
    assert ranged.status_code == 206 and ranged.content == bytes(4)
    stored = meta_emulator._meta.buckets[bucket].keys["a/one.txt"]  # type: ignore[union-attr]
    assert not hasattr(stored, "__dict__") and stored.size == len(data)


def test_a_damaged_body_is_refused_and_nothing_stored(meta_api: httpx.Client, bucket: str) -> None:
    url = meta_api.post("/presign", json={"bucket": bucket, "key": "bad", "method": "put_object"}).json()["url"]
    resp = httpx.put(url, content=b"abc", headers={"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})
    assert resp.status_code == 400
    assert meta_api.head(f"/buckets/{bucket}/objects/bad").status_code == 404


def test_listing_pages_in_utf8_order_with_delimiter(meta_api: httpx.Client, meta_emulator: HCPEmulator, bucket: str) -> None:
    keys = ["b/é", "b/z", "b/ä/1", "b/ä/2", "a", "b/\U0001f600", "c/x", "b/a"]
    for key in keys:
        meta_emulator.s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    expected = sorted(keys, key=lambda k: k.encode())
    assert _keys(meta_api, bucket, max_keys=3) == expected
    folded = _keys(meta_api, bucket, prefix="b/", delimiter="/", max_keys=2)  # a page's objects, then its prefixes
    assert folded == ["b/a", "b/z", "b/é", "b/ä/", "b/\U0001f600"]
    assert _keys(meta_api, bucket, prefix="b/ä/") == ["b/ä/1", "b/ä/2"]


def test_copy_delete_and_hcp_rules(meta_api: httpx.Client, meta_emulator: HCPEmulator, bucket: str) -> None:
    put_object(meta_api, bucket, "staging/k", b"payload")
    copied = meta_api.post(f"/buckets/{bucket}/objects/final/k/copy", json={"source_bucket": bucket, "source_key": "staging/k"})
    assert copied.status_code == 200, copied.text
    again = meta_api.post(f"/buckets/{bucket}/objects/final/k/copy", json={"source_bucket": bucket, "source_key": "staging/k"})
    assert again.status_code == 409  # HCP: no overwrite without versioning or the option
    url = meta_api.post("/presign", json={"bucket": bucket, "key": "final/k", "method": "put_object"}).json()["url"]
    assert httpx.put(url, content=b"other").status_code == 409
    meta_emulator.set_hold(bucket, "final/k")
    refused = meta_api.post(f"/buckets/{bucket}/objects/delete", json={"keys": ["final/k", "staging/k"]}).json()
    assert refused["deleted"] == 1 and [e["Key"] for e in refused["errors"]] == ["final/k"]
    meta_emulator.set_hold(bucket, "final/k", held=False)
    assert meta_api.delete(f"/buckets/{bucket}/objects/final/k").status_code == 200
    assert _keys(meta_api, bucket) == []


def test_multipart_upload_joins_part_sizes(meta_api: httpx.Client, bucket: str) -> None:
    key = "big/file"
    size = MIN_PART + 10
    presigned = meta_api.post(
        f"/buckets/{bucket}/multipart/{key}/presign", json={"file_size": size, "part_size": MIN_PART}
    ).json()
    parts = []
    for entry, length in zip(presigned["urls"], (MIN_PART, 10)):
        resp = httpx.put(entry["url"], content=bytes(length))
        assert resp.status_code == 200
        parts.append({"PartNumber": entry["part_number"], "ETag": resp.headers["etag"]})
    done = meta_api.post(
        f"/buckets/{bucket}/multipart/{key}/complete", json={"upload_id": presigned["upload_id"], "parts": parts}
    )
    assert done.status_code == 200, done.text
    head = meta_api.head(f"/buckets/{bucket}/objects/{key}")
    assert head.headers["content-length"] == str(size)
    assert head.headers["etag"].endswith('-2"')


def test_sorted_keys_stays_sorted_through_splits_and_removals() -> None:
    index = SortedKeys()
    keys = [f"{(i * 7919) % 5003:05d}" for i in range(5003)]
    for key in keys:
        index.add(key)
    for key in keys[::3]:
        index.discard(key)
    left = sorted(set(keys) - set(keys[::3]))
    assert list(index.from_key("")) == left and len(index) == len(left)
    assert list(index.from_key(left[100], inclusive=False))[:2] == left[101:103]


def test_an_unknown_store_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="store 'bytes'"):
        HCPEmulator(store="bytes")


def test_the_jobs_own_records_keep_their_bytes(meta_api: httpx.Client, bucket: str) -> None:
    """A manifest is written to be read back: keys matching the store's ``keep`` globs keep bytes."""
    text = b"0123abcd  one.txt\n"
    put_object(meta_api, bucket, "archive/manifest-sha256.txt", text)
    copied = meta_api.post(
        f"/buckets/{bucket}/objects/final/manifest-sha256.txt/copy",
        json={"source_bucket": bucket, "source_key": "archive/manifest-sha256.txt"},
    )
    assert copied.status_code == 200
    for key in ("archive/manifest-sha256.txt", "final/manifest-sha256.txt"):
        url = meta_api.post("/presign", json={"bucket": bucket, "key": key, "method": "get_object"}).json()["url"]
        assert httpx.get(url).content == text
        assert httpx.get(url, headers={"Range": "bytes=4-7"}).content == b"abcd"
