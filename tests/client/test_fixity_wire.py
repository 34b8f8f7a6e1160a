"""Fixity on the wire: every PUT carries ``Content-MD5`` of its body, S3 (the emulator, where moto
does not) refuses a body that does not match, the client checks every ETag it gets back, and the
presigned URLs the API returns accept the header (only ``host`` is signed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from rahcp_prefect.client import ChecksumMismatchError, HCPClient, HCPError, PresignedTransferError
from rahcp_prefect.client import dataplane
from rahcp_prefect.client.dataplane import STREAM_BODY_LIMIT
from rahcp_prefect.client.digests import multipart_md5
from rahcp_prefect.client.multipart import MultipartUpload
from rahcp_prefect.testing.counter import DATA_PUT, PART_PUT

MIB = 1024 * 1024


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


async def test_every_put_sends_content_md5_of_its_bytes(recorder: Any, tmp_path: Path) -> None:
    base, seen, _ = recorder
    source = tmp_path / "f"
    payload = os.urandom(3 * MIB + 3)
    source.write_bytes(payload)
    client = HCPClient(retry_base_delay=0.01)
    try:
        small = await client.data.put_bytes(f"{base}/b/small", b"hello", what="b/small")
        whole = await client.data.put_file(f"{base}/b/whole", source, len(payload), what="b/whole", chunk_size=MIB)
        part = await client.data.put_part(f"{base}/b/part", source, MIB, 2 * MIB, what="b/part")
    finally:
        await client.aclose()
    bodies = [b"hello", payload, payload[MIB : 3 * MIB]]
    assert [entry["body"] for entry in seen] == bodies
    assert [entry["headers"]["Content-MD5"] for entry in seen] == [b64md5(body) for body in bodies]
    assert whole.sha256 == hashlib.sha256(payload).hexdigest() and whole.md5 == hashlib.md5(payload).hexdigest()
    assert small.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert part.sha256 is None and part.md5 == hashlib.md5(bodies[2]).hexdigest()


async def test_an_etag_that_is_not_the_md5_sent_is_retried_then_fails(recorder: Any) -> None:
    base, seen, mode = recorder
    mode["etag"] = "0" * 32
    client = HCPClient(retry_base_delay=0.01, max_retries=2)
    try:
        with pytest.raises(PresignedTransferError, match="ETag 0{32} is not the MD5 of the bytes sent"):
            await client.data.put_bytes(f"{base}/b/k", b"payload", what="b/k")
        assert len(seen) == 3  # 1 + max_retries, never taken as done
        assert client.data.retries == 2
    finally:
        await client.aclose()


async def test_the_emulator_refuses_a_body_that_does_not_match_its_content_md5(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str
) -> None:
    # The refused PUTs go onto an existing key (the test is about Content-MD5): with the
    # overwrite option on, HCP's 409 does not come first.
    hcp_emulator.configure_namespace(hcp_bucket, overwrite=True)
    url = await hcp_client.s3.presign_put(hcp_bucket, "k")
    async with httpx.AsyncClient() as http:
        good = await http.put(url, content=b"first", headers={"Content-MD5": b64md5(b"first")})
        assert good.status_code == 200
        bad = await http.put(url, content=b"other", headers={"Content-MD5": b64md5(b"first")})
        assert bad.status_code == 400 and "<Code>BadDigest</Code>" in bad.text
        invalid = await http.put(url, content=b"other", headers={"Content-MD5": "not-a-digest"})
        assert invalid.status_code == 400 and "<Code>InvalidDigest</Code>" in invalid.text
    # as on S3: a refused PUT leaves the object as it was
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="k")["Body"].read() == b"first"


def test_moto_alone_stores_a_body_whatever_its_content_md5(hcp_emulator: Any, hcp_bucket: str) -> None:
    """Why the emulator checks the header itself: moto (its internal client skips the check)
    answers 200 and stores the body. Should moto start refusing it, this fails as a reminder."""
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="m", Body=b"other", ContentMD5=b64md5(b"first"))
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="m")["Body"].read() == b"other"


async def test_damaged_put_is_refused_and_retried_until_byte_identical(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    source = tmp_path / "f"
    payload = os.urandom(2 * MIB + 11)
    source.write_bytes(payload)
    await counts.reset()
    rule = hcp_emulator.faults.add("data", method="PUT", damage=True, count=2)
    etag = await hcp_client.s3.upload(hcp_bucket, "single", source)
    assert rule.hits == 2 and (await counts())[DATA_PUT] == 3
    stored = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="single")
    assert stored["Body"].read() == payload and etag == f'"{hashlib.md5(payload).hexdigest()}"'


async def test_damaged_part_is_refused_and_retried_and_the_object_etag_checked(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    client = await make_client(multipart_threshold=5 * MIB, multipart_chunk=5 * MIB)
    source = tmp_path / "big"
    source.write_bytes(os.urandom(12 * MIB + 5))  # parts of 5, 5 and 2 MiB
    await _one_part_damaged(client, hcp_emulator, hcp_bucket, source, 5 * MIB, counts)
    assert client.data.buffers.held == 0  # every part's buffer given back


async def _one_part_damaged(
    client: HCPClient, emulator: Any, bucket: str, source: Path, part_size: int, counts: Any
) -> None:
    """Upload ``source`` (three parts of ``part_size``) with one part damaged on the way: it is
    refused and sent again, and the object and every digest are those of the file."""
    payload = source.read_bytes()
    await counts.reset()
    rule = emulator.faults.add("data", method="PUT", path="/big$", damage=True, count=1)
    sent = await client.s3.upload_multipart_digests(bucket, "big", source, concurrency=2)
    assert rule.hits == 1 and (await counts())[PART_PUT] == 4
    assert emulator.s3.get_object(Bucket=bucket, Key="big")["Body"].read() == payload
    parts = [payload[i : i + part_size] for i in range(0, len(payload), part_size)]
    assert sent.part_md5s == tuple(hashlib.md5(part).hexdigest() for part in parts)
    assert sent.md5 == multipart_md5(hashlib.md5(part).digest() for part in parts)
    assert sent.etag == f'"{sent.md5}"' and sent.sha256 == hashlib.sha256(payload).hexdigest()


async def test_a_multipart_etag_that_is_not_the_parts_digest_is_uploaded_again_then_fails(
    make_client: Any, hcp_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store cannot be made to assemble wrong parts, so the complete's answer is replaced."""
    client = await make_client(multipart_threshold=5 * MIB, multipart_chunk=5 * MIB)
    completes = 0

    async def wrong_complete(self: MultipartUpload, etags: dict[int, str]) -> str:
        nonlocal completes
        completes += 1
        return '"00000000000000000000000000000000-2"'

    monkeypatch.setattr(MultipartUpload, "_complete", wrong_complete)
    with pytest.raises(ChecksumMismatchError, match="not the digest of the parts sent"):
        await client.s3.upload_multipart_digests(hcp_bucket, "mp", os.urandom(6 * MIB))
    assert completes == 2


# -- the presigned URLs, as a SigV4-checking S3 would see the request ---------------------------


def _sigv4_query_valid(method: str, url: str, headers: dict[str, str], secret: str) -> bool:
    """Check a presigned URL's signature for the request as sent, the way S3 does (AWS SigV4
    query-string authentication, written from the spec independently of the emulator's signer)."""
    parts = urlsplit(url)
    fields = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(fields)
    signed = params["X-Amz-SignedHeaders"].split(";")
    lowered = {name.lower(): value for name, value in headers.items()}
    lowered["host"] = parts.netloc
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(fields)
        if k != "X-Amz-Signature"
    )
    canonical_headers = "".join(f"{name}:{lowered.get(name, '').strip()}\n" for name in signed)
    canonical = "\n".join(
        [method, parts.path, canonical_query, canonical_headers, ";".join(signed), "UNSIGNED-PAYLOAD"]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    day, region, service, _ = scope.split("/")
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, params["X-Amz-Signature"])


async def test_presigned_put_urls_accept_content_md5(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, recorder: Any
) -> None:
    """Every PUT URL the API hands out (single, bulk, parts) signs only ``host``: the request
    the data plane sends, ``Content-MD5`` included, carries a valid signature."""
    base, seen, _ = recorder
    client = HCPClient(retry_base_delay=0.01)
    try:
        await client.data.put_bytes(f"{base}/b/k", b"body", what="b/k")
    finally:
        await client.aclose()
    sent_headers = seen[0]["headers"]
    assert "Content-MD5" in sent_headers
    single = await hcp_client.s3.presign_put(hcp_bucket, "dir/a b.bin")
    bulk = await hcp_client.s3.presign_bulk(hcp_bucket, ["x/ü.bin"], method="put_object")
    upload = await hcp_client.request_json("POST", f"/buckets/{hcp_bucket}/multipart/mp")
    parts = await hcp_client.request_json(
        "POST",
        f"/buckets/{hcp_bucket}/multipart/mp/presign",
        json={"upload_id": upload["upload_id"], "file_size": 6 * MIB, "part_size": 5 * MIB},
    )
    urls = [single, *bulk.values(), *(item["url"] for item in parts["urls"])]
    for url in urls:
        assert dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"] == "host"
        assert _sigv4_query_valid("PUT", url, sent_headers, "testing"), url
    # the check is real: a URL that did sign Content-MD5 fails when another digest is sent
    signer = boto3.session.Session().client(
        "s3", endpoint_url=hcp_emulator.s3_endpoint, aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    strict = signer.generate_presigned_url(
        "put_object", Params={"Bucket": hcp_bucket, "Key": "k", "ContentMD5": b64md5(b"other")}, ExpiresIn=60
    )
    assert "content-md5" in dict(parse_qsl(urlsplit(strict).query))["X-Amz-SignedHeaders"]
    assert _sigv4_query_valid("PUT", strict, {"Content-MD5": b64md5(b"other")}, "testing")
    assert not _sigv4_query_valid("PUT", strict, sent_headers, "testing")
    assert not _sigv4_query_valid("PUT", single, sent_headers, "wrong-secret")


def _largest_hold(client: HCPClient) -> list[int]:
    """The most bytes the data plane's budget ever held at once (a one-item list, updated)."""
    largest = [0]
    budget = client.data.buffers
    acquire = budget.acquire

    async def acquire_and_note(nbytes: int) -> int:
        taken = await acquire(nbytes)
        largest[0] = max(largest[0], budget.held)
        return taken

    budget.acquire = acquire_and_note  # type: ignore[method-assign]
    return largest


async def test_a_large_body_is_hashed_from_disk_then_streamed_never_held(recorder: Any, tmp_path: Path) -> None:
    base, seen, _ = recorder
    source = tmp_path / "f"
    payload = os.urandom(STREAM_BODY_LIMIT + 3 * MIB + 7)
    source.write_bytes(payload)
    client = HCPClient(retry_base_delay=0.01)
    largest = _largest_hold(client)
    try:
        whole = await client.data.put_file(f"{base}/b/whole", source, len(payload), what="b/whole")
        part = await client.data.put_part(f"{base}/b/part", source, 5, STREAM_BODY_LIMIT + 1, what="b/part")
        small = await client.data.put_part(f"{base}/b/small", source, 1, 2 * MIB, what="b/small")
    finally:
        await client.aclose()
    bodies = [payload, payload[5 : 5 + STREAM_BODY_LIMIT + 1], payload[1 : 1 + 2 * MIB]]
    assert [entry["body"] for entry in seen] == bodies
    assert [entry["headers"]["Content-MD5"] for entry in seen] == [b64md5(body) for body in bodies]
    assert whole.sha256 == hashlib.sha256(payload).hexdigest() and whole.md5 == hashlib.md5(payload).hexdigest()
    assert part.sha256 is None and part.md5 == hashlib.md5(bodies[1]).hexdigest()
    assert small.md5 == hashlib.md5(bodies[2]).hexdigest()
    assert largest[0] == 2 * MIB  # only the small body was ever read into memory


async def test_a_file_that_shrinks_while_it_streams_is_an_error_not_a_short_put(
    recorder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen, _ = recorder
    source = tmp_path / "f"
    source.write_bytes(os.urandom(STREAM_BODY_LIMIT + MIB))
    real = dataplane.hash_file_region

    async def hash_then_truncate(*args: Any, **kwargs: Any) -> Any:
        digests = await real(*args, **kwargs)
        os.truncate(source, STREAM_BODY_LIMIT // 2)
        return digests

    monkeypatch.setattr(dataplane, "hash_file_region", hash_then_truncate)
    client = HCPClient(retry_base_delay=0.01, max_retries=1)
    try:
        with pytest.raises(HCPError, match="changed size"):
            await client.data.put_file(f"{base}/b/f", source, STREAM_BODY_LIMIT + MIB, what="b/f")
    finally:
        await client.aclose()
    assert seen == []  # the server never took a body


async def test_a_streamed_part_damaged_on_the_way_is_refused_and_retried(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    """Parts above STREAM_BODY_LIMIT are hashed from disk and streamed: the same guarantees."""
    part_size = STREAM_BODY_LIMIT + MIB
    client = await make_client(multipart_threshold=5 * MIB, multipart_chunk=part_size)
    largest = _largest_hold(client)
    source = tmp_path / "big"
    source.write_bytes(os.urandom(2 * part_size + 3 * MIB))  # parts of 9, 9 and 3 MiB
    await _one_part_damaged(client, hcp_emulator, hcp_bucket, source, part_size, counts)
    assert largest[0] == 3 * MIB  # only the last, small part was held in memory


async def test_a_file_changed_during_its_multipart_upload_is_aborted_never_completed(
    make_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its parts and its SHA-256 are read separately: a file rewritten in between (same size,
    other bytes) must not become an object with digests of another version."""
    client = await make_client(multipart_threshold=5 * MIB, multipart_chunk=5 * MIB)
    source = tmp_path / "big"
    source.write_bytes(os.urandom(15 * MIB))
    real = client.data.put_part
    calls = 0

    async def put_then_rewrite(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        sent = await real(*args, **kwargs)
        calls += 1
        if calls == 1:
            source.write_bytes(os.urandom(15 * MIB))
            stamp = source.stat().st_mtime_ns + 1_000_000_000
            os.utime(source, ns=(stamp, stamp))
        return sent

    monkeypatch.setattr(client.data, "put_part", put_then_rewrite)
    with pytest.raises(HCPError, match="changed during upload"):
        await client.s3.upload_multipart_digests(hcp_bucket, "big", source, concurrency=1)
    assert "Contents" not in hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)
    assert not hcp_emulator.s3.list_multipart_uploads(Bucket=hcp_bucket).get("Uploads")
