"""S3Ops against the emulator (real moto S3 behind it): every method, odd keys, staging."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from rahcp_prefect.client import HCPClient, HCPError, NotFoundError, PresignedTransferError
from rahcp_prefect.testing.counter import DATA_GET, DATA_PUT, PART_PUT, PRESIGN

MIB = 1024 * 1024
INITIATE = ("api", "POST", "/buckets/{bucket}/multipart/{key:path}")

ODD_KEYS = [
    "dir/with space.txt",
    "ünïcödé/straße-日本.bin",
    "q?x=1&y=2.txt",
    "hash#fragment.txt",
    "percent%41%2F%.txt",
    "plus+sign +more.txt",
    "mixed ?#%+ ü/semi;colon~tilde.txt",
]


def _stored(emulator: Any, bucket: str, key: str) -> bytes:
    return emulator.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


# -- uploads, downloads, odd keys --------------------------------------------------------------


@pytest.mark.parametrize("key", ODD_KEYS)
async def test_odd_keys_round_trip(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, key: str
) -> None:
    payload = os.urandom(2048)
    source = tmp_path / "src.bin"
    source.write_bytes(payload)

    etag = await hcp_client.s3.upload(hcp_bucket, key, source)
    assert etag == f'"{hashlib.md5(payload).hexdigest()}"'
    assert _stored(hcp_emulator, hcp_bucket, key) == payload  # stored under exactly this key

    head = await hcp_client.s3.head(hcp_bucket, key)
    assert head["content-length"] == "2048" and head["etag"] == etag

    listed = await hcp_client.s3.list_objects(hcp_bucket)
    assert [item["Key"] for item in listed["objects"]] == [key]

    dest = tmp_path / "out" / "file.bin"
    assert await hcp_client.s3.download(hcp_bucket, key, dest) == 2048
    assert dest.read_bytes() == payload
    assert await hcp_client.s3.download_bytes(hcp_bucket, key) == payload

    copy_key = "copies/" + key
    await hcp_client.s3.copy(hcp_bucket, copy_key, hcp_bucket, key)
    assert _stored(hcp_emulator, hcp_bucket, copy_key) == payload

    await hcp_client.s3.delete(hcp_bucket, key)
    await hcp_client.s3.delete(hcp_bucket, copy_key)
    assert (await hcp_client.s3.list_objects(hcp_bucket))["objects"] == []


async def test_upload_bytes_and_zero_byte_objects(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    assert await hcp_client.s3.upload(hcp_bucket, "b.txt", b"hello") == f'"{hashlib.md5(b"hello").hexdigest()}"'
    assert await hcp_client.s3.download_bytes(hcp_bucket, "b.txt") == b"hello"

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    empty_md5 = f'"{hashlib.md5(b"").hexdigest()}"'
    assert await hcp_client.s3.upload(hcp_bucket, "zero/from-file", empty) == empty_md5
    assert await hcp_client.s3.upload(hcp_bucket, "zero/from-bytes", b"") == empty_md5
    assert (await hcp_client.s3.head(hcp_bucket, "zero/from-file"))["content-length"] == "0"
    assert await hcp_client.s3.download_bytes(hcp_bucket, "zero/from-bytes") == b""
    dest = tmp_path / "zero.out"
    assert await hcp_client.s3.download(hcp_bucket, "zero/from-file", dest) == 0
    assert dest.exists() and dest.stat().st_size == 0
    # an explicit multipart of nothing falls back to one PUT
    assert await hcp_client.s3.upload_multipart(hcp_bucket, "zero/mp", b"") == empty_md5


async def test_upload_refuses_str_and_bad_keys(hcp_client: HCPClient, hcp_bucket: str, counts: Any) -> None:
    await counts.reset()
    with pytest.raises(TypeError, match="Path"):
        await hcp_client.s3.upload(hcp_bucket, "k", "not a path")  # type: ignore[arg-type]
    for key in ("a/../b", "./x", "x/.", ""):
        with pytest.raises(ValueError) as info:
            await hcp_client.s3.upload(hcp_bucket, key, b"x")
        if key:
            assert repr(key) in str(info.value)
    with pytest.raises(ValueError, match="a/../b"):
        await hcp_client.s3.head(hcp_bucket, "a/../b")
    with pytest.raises(ValueError, match="a/../b"):
        await hcp_client.s3.download(hcp_bucket, "a/../b", Path("never"))
    assert sum((await counts()).values()) == 0  # refused before any request


async def test_download_overwrites_only_when_complete(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    dest = tmp_path / "existing.bin"
    dest.write_bytes(b"old content")
    await hcp_client.s3.upload(hcp_bucket, "k", b"new content")
    hcp_emulator.faults.add("data", method="GET", status=500, count=None)
    with pytest.raises(PresignedTransferError) as info:
        await hcp_client.s3.download(hcp_bucket, "k", dest)
    assert info.value.status_code == 500 and str(info.value).endswith(f"for {hcp_bucket}/k")
    assert dest.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.bin"]  # no temp file left
    hcp_emulator.faults.clear()
    assert await hcp_client.s3.download(hcp_bucket, "k", dest) == 11
    assert dest.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.bin"]


async def test_download_of_missing_key_leaves_no_file(
    hcp_client: HCPClient, hcp_bucket: str, tmp_path: Path
) -> None:
    dest = tmp_path / "sub" / "missing.bin"
    with pytest.raises(NotFoundError) as info:
        await hcp_client.s3.download(hcp_bucket, "missing.bin", dest)
    assert info.value.status_code == 404 and "missing.bin" in str(info.value)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # neither the final name nor a temp file
    with pytest.raises(NotFoundError):
        await hcp_client.s3.download_bytes(hcp_bucket, "missing.bin")


# -- presigned URLs ---------------------------------------------------------------------------


async def test_presign_get_and_put_give_working_urls(hcp_client: HCPClient, hcp_bucket: str) -> None:
    put_url = await hcp_client.s3.presign_put(hcp_bucket, "p/x y.txt", expires=600)
    assert "X-Amz-Signature=" in put_url and "X-Amz-Expires=600" in put_url
    async with httpx.AsyncClient() as http:
        assert (await http.put(put_url, content=b"via url")).status_code == 200
        get_url = await hcp_client.s3.presign_get(hcp_bucket, "p/x y.txt")
        assert (await http.get(get_url)).content == b"via url"


async def test_expired_presigned_url_is_presigned_again(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    """S3 answers 403 to an expired URL (moto never expires them, so the 403 is injected)."""
    await counts.reset()
    hcp_emulator.faults.add("data", method="PUT", status=403, count=1)
    assert await hcp_client.s3.upload(hcp_bucket, "k", b"payload")
    got = await counts()
    assert got[PRESIGN] == 2 and got[DATA_PUT] == 2

    await counts.reset()
    hcp_emulator.faults.add("data", method="GET", status=403, count=1)
    dest = tmp_path / "k.out"
    assert await hcp_client.s3.download(hcp_bucket, "k", dest) == 7
    got = await counts()
    assert got[PRESIGN] == 2 and got[DATA_GET] == 2

    hcp_emulator.faults.add("data", method="GET", status=403, count=1)
    assert await hcp_client.s3.download_bytes(hcp_bucket, "k") == b"payload"


async def test_403_twice_raises_without_leaking_the_url(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, counts: Any
) -> None:
    await counts.reset()
    hcp_emulator.faults.add("data", method="PUT", status=403, count=None)
    with pytest.raises(PresignedTransferError) as info:
        await hcp_client.s3.upload(hcp_bucket, "dir/k.txt", b"x")
    assert info.value.status_code == 403
    assert str(info.value) == f"403 Forbidden for {hcp_bucket}/dir/k.txt"
    assert "X-Amz" not in repr(info.value) and "http" not in str(info.value)
    assert (await counts())[DATA_PUT] == 2  # once, then once more after presigning again


async def test_presign_bulk(hcp_client: HCPClient, hcp_bucket: str, counts: Any) -> None:
    keys = ["a.txt", "dir/b c.txt", "ü?.txt"]
    await counts.reset()
    urls = await hcp_client.s3.presign_bulk(hcp_bucket, keys, method="put_object", expires=900)
    assert list(urls) == keys and all("X-Amz-Signature=" in url for url in urls.values())
    assert (await counts())[("api", "POST", "/buckets/{bucket}/objects/presign")] == 1
    for key, url in urls.items():
        assert await hcp_client.data.put_bytes(url, key.encode(), what=key)
    gets = await hcp_client.s3.presign_bulk(hcp_bucket, keys)
    for key, url in gets.items():
        assert await hcp_client.data.get_bytes(url, what=key) == key.encode()


async def test_presign_bulk_presigns_left_out_keys_one_by_one() -> None:
    """The emulator never leaves keys out of a bulk answer (the reference does on signing
    failures), so this case uses a mock transport."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen.append(path)
        if path.endswith("/auth/token"):
            return httpx.Response(200, json={"access_token": "tok-abcdef", "token_type": "bearer"})
        if path.endswith("/objects/presign"):
            return httpx.Response(200, json={"urls": [{"key": "a", "url": "http://s3/b/a?sig"}], "expires_in": 60})
        if path.endswith("/presign"):
            key = httpx.Response(200, content=request.content).json()["key"]
            return httpx.Response(200, json={"url": f"http://s3/b/{key}?single"})
        return httpx.Response(404, json={"detail": "no"})

    async with HCPClient(username="u", password="p", transport=httpx.MockTransport(handler)) as client:
        urls = await client.s3.presign_bulk("b", ["a", "b", "c"], method="put_object")
    assert urls == {"a": "http://s3/b/a?sig", "b": "http://s3/b/b?single", "c": "http://s3/b/c?single"}
    assert seen.count("/api/v1/presign") == 2


# -- multipart --------------------------------------------------------------------------------


async def test_upload_picks_multipart_at_the_threshold(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    client = await make_client(multipart_threshold=6 * MIB, multipart_chunk=5 * MIB)
    below = tmp_path / "below"
    below.write_bytes(os.urandom(6 * MIB - 1))
    at = tmp_path / "at"
    at.write_bytes(os.urandom(6 * MIB))
    await counts.reset()
    await client.s3.upload(hcp_bucket, "below", below)
    got = await counts()
    assert got[INITIATE] == 0 and got[DATA_PUT] == 1
    await counts.reset()
    etag = await client.s3.upload(hcp_bucket, "at", at)
    got = await counts()
    assert got[INITIATE] == 1 and got[PART_PUT] == 2 and etag.endswith('-2"')
    assert _stored(hcp_emulator, hcp_bucket, "at") == at.read_bytes()


async def test_multipart_upload_with_several_parts(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    client = await make_client(multipart_chunk=5 * MIB, multipart_concurrency=3)
    source = tmp_path / "big.bin"
    payload = os.urandom(12 * MIB + 12345)
    source.write_bytes(payload)
    key = "multi part/ü?#.bin"
    await counts.reset()
    etag = await client.s3.upload_multipart(hcp_bucket, key, source, chunk_size=256 * 1024)
    got = await counts()
    assert got[PART_PUT] == 3 and got[("api", "POST", "/buckets/{bucket}/multipart/{key:path}/complete")] == 1
    assert etag.startswith('"') and etag.endswith('-3"')
    assert _stored(hcp_emulator, hcp_bucket, key) == payload
    assert hcp_emulator.s3.list_multipart_uploads(Bucket=hcp_bucket).get("Uploads", []) == []
    # bytes go multipart too
    etag = await client.s3.upload_multipart(hcp_bucket, "from-bytes", payload[: 6 * MIB])
    assert etag.endswith('-2"') and _stored(hcp_emulator, hcp_bucket, "from-bytes") == payload[: 6 * MIB]


async def test_multipart_parts_run_concurrently(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    import time

    client = await make_client(multipart_chunk=5 * MIB)
    source = tmp_path / "four-parts"
    source.write_bytes(os.urandom(16 * MIB))
    hcp_emulator.faults.add("data", method="PUT", path=".", delay=0.6, count=None)
    started = time.monotonic()
    await client.s3.upload_multipart(hcp_bucket, "k", source, concurrency=4)
    assert time.monotonic() - started < 4 * 0.6  # one at a time would take >= 2.4 s


async def _three_parts(make_client: Any, tmp_path: Path) -> tuple[HCPClient, Path]:
    """A client with 5 MiB parts and an 11 MiB file: a multipart upload of three parts."""
    client = await make_client(multipart_chunk=5 * MIB)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(11 * MIB))
    return client, source


async def test_multipart_failure_aborts_the_upload(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    client, source = await _three_parts(make_client, tmp_path)
    await counts.reset()
    hcp_emulator.faults.add("data", method="PUT", status=400, count=1)
    with pytest.raises(PresignedTransferError) as info:
        await client.s3.upload_multipart(hcp_bucket, "k", source)
    assert info.value.status_code == 400 and f"{hcp_bucket}/k (part" in str(info.value)
    assert (await counts())[("api", "POST", "/buckets/{bucket}/multipart/{key:path}/abort")] == 1
    assert hcp_emulator.s3.list_multipart_uploads(Bucket=hcp_bucket).get("Uploads", []) == []
    assert (await client.s3.list_objects(hcp_bucket))["objects"] == []


async def test_multipart_part_403_presigns_parts_again(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    client, source = await _three_parts(make_client, tmp_path)
    await counts.reset()
    hcp_emulator.faults.add("data", method="PUT", status=403, count=1)
    etag = await client.s3.upload_multipart(hcp_bucket, "k", source, concurrency=1)
    assert etag.endswith('-3"')
    assert (await counts())[("api", "POST", "/buckets/{bucket}/multipart/{key:path}/presign")] == 2
    assert _stored(hcp_emulator, hcp_bucket, "k") == source.read_bytes()


async def test_file_changing_size_is_reported(hcp_client: HCPClient, hcp_bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "grows.bin"
    source.write_bytes(b"1234")
    url = await hcp_client.s3.presign_put(hcp_bucket, "k")
    with pytest.raises(HCPError, match="grows.bin.*changed size during upload"):
        await hcp_client.data.put_file(url, source, 3, what=f"{hcp_bucket}/k")


# -- buckets, listing, metadata, delete, copy ------------------------------------------------


async def test_buckets_create_list_delete(hcp_client: HCPClient, hcp_bucket: str) -> None:
    names = [b["Name"] for b in (await hcp_client.s3.list_buckets())["buckets"]]
    assert hcp_bucket in names
    extra = hcp_bucket + "-x"
    await hcp_client.s3.create_bucket(extra)
    await hcp_client.s3.upload(extra, "k", b"x")
    await hcp_client.s3.delete_bucket(extra, force=True)
    names = [b["Name"] for b in (await hcp_client.s3.list_buckets())["buckets"]]
    assert extra not in names


async def test_list_objects_delimiter_and_iter_objects_pages(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, counts: Any
) -> None:
    keys = ["top.txt", "d/1", "d/2", "d/3", "e/1"]
    for key in keys:
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=key.encode())
    page = await hcp_client.s3.list_objects(hcp_bucket, delimiter="/")
    assert [o["Key"] for o in page["objects"]] == ["top.txt"]
    assert page["common_prefixes"] == ["d/", "e/"] and page["is_truncated"] is False
    page = await hcp_client.s3.list_objects(hcp_bucket, prefix="d/", max_keys=2)
    assert page["is_truncated"] is True and page["next_continuation_token"]
    rest = await hcp_client.s3.list_objects(
        hcp_bucket, prefix="d/", continuation_token=page["next_continuation_token"]
    )
    assert [o["Key"] for o in rest["objects"]] == ["d/3"]

    await counts.reset()
    items = [item async for item in hcp_client.s3.iter_objects(hcp_bucket, page_size=2)]
    assert sorted(item["Key"] for item in items) == sorted(keys)
    assert all(item["Size"] == len(item["Key"]) for item in items)
    assert (await counts())[("api", "GET", "/buckets/{bucket}/objects")] == 3
    assert [i["Key"] async for i in hcp_client.s3.iter_objects(hcp_bucket, prefix="e/")] == ["e/1"]


async def test_iter_objects_asks_for_the_next_page_half_way(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, counts: Any
) -> None:
    keys = [f"k{i:02d}" for i in range(10)]
    for key in keys:
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=b"x")
    list_calls = ("api", "GET", "/buckets/{bucket}/objects")

    await counts.reset()
    listing = hcp_client.s3.iter_objects(hcp_bucket, page_size=4)
    assert (await listing.__anext__())["Key"] == "k00"
    await asyncio.sleep(0.3)
    assert (await counts())[list_calls] == 1  # nothing asked ahead at the start of a page
    assert [(await listing.__anext__())["Key"] for _ in range(2)] == ["k01", "k02"]
    await asyncio.sleep(0.3)  # half-way through page 1: page 2 was asked for
    assert (await counts())[list_calls] == 2
    await listing.aclose()  # stopping early drops the page asked for ahead; nothing more is asked
    await asyncio.sleep(0.1)
    assert (await counts())[list_calls] == 2

    await counts.reset()
    assert [i["Key"] async for i in hcp_client.s3.iter_objects(hcp_bucket, page_size=4)] == keys
    assert (await counts())[list_calls] == 3  # 4 + 4 + 2 keys


async def test_head_returns_lower_case_headers(hcp_client: HCPClient, hcp_bucket: str) -> None:
    await hcp_client.s3.upload(hcp_bucket, "h.bin", b"12345")
    head = await hcp_client.s3.head(hcp_bucket, "h.bin")
    assert head["content-length"] == "5"
    assert head["etag"] == f'"{hashlib.md5(b"12345").hexdigest()}"'
    assert "last-modified" in head and all(name == name.lower() for name in head)


async def test_delete_and_delete_bulk(hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str) -> None:
    for key in ("a", "b", "c", "keep"):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=b"x")
    assert (await hcp_client.s3.delete(hcp_bucket, "a"))["status"] == "deleted"
    assert (await hcp_client.s3.delete(hcp_bucket, "a"))["status"] == "deleted"  # idempotent
    result = await hcp_client.s3.delete_bulk(hcp_bucket, ["b", "c", "never-existed"])
    assert result["deleted"] == 3 and result["errors"] == []
    assert [o["Key"] for o in (await hcp_client.s3.list_objects(hcp_bucket))["objects"]] == ["keep"]


async def test_copy_and_copy_of_missing_source(hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str) -> None:
    await hcp_client.s3.upload(hcp_bucket, "src", b"data")
    result = await hcp_client.s3.copy(hcp_bucket, "dst/copy", hcp_bucket, "src")
    assert result == {"status": "copied", "bucket": hcp_bucket, "key": "dst/copy"}
    assert _stored(hcp_emulator, hcp_bucket, "dst/copy") == b"data"
    with pytest.raises(NotFoundError):
        await hcp_client.s3.copy(hcp_bucket, "dst/x", hcp_bucket, "no-such-src")


# -- staging ----------------------------------------------------------------------------------


def _keys(emulator: Any, bucket: str, prefix: str) -> list[str]:
    listed = emulator.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def test_commit_staging_moves_everything(hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str) -> None:
    for i in range(5):
        await hcp_client.s3.upload(hcp_bucket, f"staging/batch-1/r {i}.json", f"{i}".encode())
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="staging/other/x", Body=b"x")
    moved = await hcp_client.s3.commit_staging(hcp_bucket, "staging/batch-1/", "final/batch-1/")
    assert moved == 5
    assert _keys(hcp_emulator, hcp_bucket, "staging/batch-1/") == []
    assert _keys(hcp_emulator, hcp_bucket, "final/") == [f"final/batch-1/r {i}.json" for i in range(5)]
    assert _stored(hcp_emulator, hcp_bucket, "final/batch-1/r 3.json") == b"3"
    assert _keys(hcp_emulator, hcp_bucket, "staging/other/") == ["staging/other/x"]
    assert await hcp_client.s3.commit_staging(hcp_bucket, "staging/batch-1/", "final/batch-1/") == 0


async def test_commit_staging_keeps_concurrency_copies_in_flight(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(12):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"stg/{i:02d}", Body=b"x")
    hcp_emulator.faults.add("api", method="POST", path=r"/copy$", delay=0.2, count=None)  # slow copies
    in_flight = peak = 0
    copy = hcp_client.s3.copy

    async def counted_copy(*args: Any) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await copy(*args)
        finally:
            in_flight -= 1

    monkeypatch.setattr(hcp_client.s3, "copy", counted_copy)
    assert await hcp_client.s3.commit_staging(hcp_bucket, "stg/", "out/", concurrency=5) == 12
    assert peak == 5
    peak = 0
    assert await hcp_client.s3.commit_staging(hcp_bucket, "out/", "back/") == 12
    assert peak == 8  # the default, COPY_CONCURRENCY
    assert _keys(hcp_emulator, hcp_bucket, "back/") == [f"back/{i:02d}" for i in range(12)]
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        await hcp_client.s3.commit_staging(hcp_bucket, "back/", "x/", concurrency=0)


async def test_commit_staging_resumes_after_a_crash_half_way(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str
) -> None:
    for i in range(6):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"stg/{i}", Body=f"v{i}".encode())
    # first run: copies succeed, the delete of the sources fails -> half done
    hcp_emulator.faults.add("api", method="POST", path=r"/objects/delete$", status=400, count=1)
    with pytest.raises(HCPError):
        await hcp_client.s3.commit_staging(hcp_bucket, "stg/", "out/")
    assert len(_keys(hcp_emulator, hcp_bucket, "out/")) == 6 and len(_keys(hcp_emulator, hcp_bucket, "stg/")) == 6
    # second run: one copy fails part-way through
    hcp_emulator.faults.add("api", method="POST", path=r"/objects/out/4/copy$", status=400, count=1)
    with pytest.raises(HCPError):
        await hcp_client.s3.commit_staging(hcp_bucket, "stg/", "out/")
    # third run finishes the job
    assert await hcp_client.s3.commit_staging(hcp_bucket, "stg/", "out/") == 6
    assert _keys(hcp_emulator, hcp_bucket, "stg/") == []
    assert _keys(hcp_emulator, hcp_bucket, "out/") == [f"out/{i}" for i in range(6)]
    assert _stored(hcp_emulator, hcp_bucket, "out/4") == b"v4"


async def test_commit_pages_flow_without_a_pause(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next page's copies start before the page before it is deleted (its tail still in
    flight: one window across both, never more than it in flight), and every page ends placed
    and deleted."""
    from rahcp_prefect.client.prefix_moves import move_prefix

    for i in range(60):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"stg/{i:03d}", Body=f"v{i}".encode())
    hcp_emulator.faults.add("api", method="POST", path=r"/copy$", delay=0.05, count=None)
    clock = asyncio.get_running_loop().time
    started: dict[int, float] = {}
    deleted: dict[str, float] = {}  # a page's first key: when its delete was sent
    in_flight = peak = 0

    async def place(dest_bucket: str, dest_key: str, item: dict[str, Any]) -> str:
        nonlocal in_flight, peak
        started[int(item["Key"][len("stg/") :])] = clock()
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await hcp_client.s3.place(dest_bucket, dest_key, hcp_bucket, item)
        finally:
            in_flight -= 1

    delete_bulk = hcp_client.s3.delete_bulk

    async def timed_delete(bucket: str, keys: list[str]) -> Any:
        deleted[keys[0]] = clock()
        return await delete_bulk(bucket, keys)

    monkeypatch.setattr(hcp_client.s3, "delete_bulk", timed_delete)
    moves = await move_prefix(
        hcp_client, hcp_bucket, "stg/", "out/", place, concurrency=4, max_concurrency=4, page_size=20
    )
    assert moves.objects == 60 and peak == 4
    assert sorted(deleted) == ["stg/000", "stg/020", "stg/040"]  # pages of 20
    for page in (1, 2):
        first_of_next = min(started[i] for i in range(20 * page, 20 * page + 20))
        assert first_of_next < deleted[f"stg/{20 * (page - 1):03d}"], f"page {page + 1} waited for page {page}"
    assert _keys(hcp_emulator, hcp_bucket, "stg/") == []
    assert _keys(hcp_emulator, hcp_bucket, "out/") == [f"out/{i:03d}" for i in range(60)]


async def test_commit_page_failing_keeps_its_sources_and_a_rerun_finishes(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str
) -> None:
    """A copy failing in the second page stops the moves at once (no task left running); no
    source of a page not wholly placed is deleted; running again finishes."""
    from rahcp_prefect.client.prefix_moves import move_prefix

    for i in range(30):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"stg/{i:03d}", Body=f"v{i}".encode())
    hcp_emulator.faults.add("api", method="POST", path=r"/objects/out/015/copy$", status=400, count=None)
    with pytest.raises(HCPError):
        await move_prefix(hcp_client, hcp_bucket, "stg/", "out/", concurrency=3, max_concurrency=3, page_size=10)
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no copy, delete or listing left behind
    staged = set(_keys(hcp_emulator, hcp_bucket, "stg/"))
    placed = set(_keys(hcp_emulator, hcp_bucket, "out/"))
    assert {f"stg/{i:03d}" for i in range(10, 30)} <= staged  # pages 2 and 3: not wholly placed
    assert "out/015" not in placed
    for i in range(30):  # each object staged, placed or both
        assert f"stg/{i:03d}" in staged or f"out/{i:03d}" in placed
    hcp_emulator.faults.clear()
    moves = await move_prefix(hcp_client, hcp_bucket, "stg/", "out/", page_size=10)
    # page 1's delete, cancelled with the moves, may still have been done by the store since
    assert 20 <= moves.objects <= len(staged)
    assert _keys(hcp_emulator, hcp_bucket, "stg/") == []
    assert _keys(hcp_emulator, hcp_bucket, "out/") == [f"out/{i:03d}" for i in range(30)]
    assert _stored(hcp_emulator, hcp_bucket, "out/015") == b"v15"


async def test_a_page_that_failed_before_its_turn_still_stops_the_moves() -> None:
    """The page that fails may be done before the moves wait for it (while the next page is
    listed): its error is raised then, not passed over (it was, and the moves went on)."""
    from collections import deque

    from rahcp_prefect.client.prefix_moves import _first_done

    async def failing_page() -> None:
        raise HCPError("copy refused")

    async def placed_page() -> None:
        return None

    moving = deque([asyncio.ensure_future(failing_page()), asyncio.ensure_future(placed_page())])
    await asyncio.sleep(0)  # both done before anyone waits for them
    assert all(task.done() for task in moving)
    with pytest.raises(HCPError, match="copy refused"):
        await _first_done(moving)


async def test_commit_staging_refuses_overlapping_prefixes(hcp_client: HCPClient, hcp_bucket: str) -> None:
    with pytest.raises(ValueError):
        await hcp_client.s3.commit_staging(hcp_bucket, "", "final/")
    with pytest.raises(ValueError):
        await hcp_client.s3.commit_staging(hcp_bucket, "stg/", "stg/final/")
    with pytest.raises(ValueError):
        await hcp_client.s3.cleanup_staging(hcp_bucket, "")


async def test_cleanup_staging_in_batches_of_1000(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, counts: Any
) -> None:
    for i in range(1003):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"stg/{i:05d}", Body=b"")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="keep/me", Body=b"")
    await counts.reset()
    assert await hcp_client.s3.cleanup_staging(hcp_bucket, "stg/") == 1003
    assert (await counts())[("api", "POST", "/buckets/{bucket}/objects/delete")] == 2
    assert _keys(hcp_emulator, hcp_bucket, "") == ["keep/me"]
