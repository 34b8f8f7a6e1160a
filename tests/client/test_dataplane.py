"""``client.data`` (the aiohttp data plane) on presigned URLs: the interface the bulk engine uses."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.client import HCPClient, HCPError, PresignedTransferError
from rahcp_prefect.testing.counter import DATA_GET, DATA_PUT

MIB = 1024 * 1024


async def test_put_file_small_and_streamed(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    for name, size in (("small", 1000), ("streamed", 3 * MIB + 7)):
        source = tmp_path / name
        payload = os.urandom(size)
        source.write_bytes(payload)
        key = f"dir/{name} ü?.bin"
        url = await hcp_client.s3.presign_put(hcp_bucket, key)
        sent = await hcp_client.data.put_file(url, source, size, what=f"{hcp_bucket}/{key}", chunk_size=MIB)
        stored = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key=key)
        assert stored["Body"].read() == payload and stored["ETag"] == sent.etag
        assert sent.md5 == hashlib.md5(payload).hexdigest()
        assert sent.sha256 == hashlib.sha256(payload).hexdigest()


async def test_put_part_and_put_bytes(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "f"
    payload = os.urandom(2 * MIB)
    source.write_bytes(payload)
    url = await hcp_client.s3.presign_put(hcp_bucket, "part")
    await hcp_client.data.put_part(url, source, 1000, MIB + 5, what="b/part", chunk_size=64 * 1024)
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="part")["Body"].read() == payload[1000 : 1000 + MIB + 5]
    url = await hcp_client.s3.presign_put(hcp_bucket, "bytes")
    assert (await hcp_client.data.put_bytes(url, b"abc", what="b/bytes")).etag.startswith('"')
    with pytest.raises(HCPError, match="changed size"):
        await hcp_client.data.put_part(url, source, MIB, 2 * MIB, what="b/part")


async def test_get_to_file_and_get_bytes(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    payload = os.urandom(3 * MIB + 1)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="g", Body=payload)
    url = await hcp_client.s3.presign_get(hcp_bucket, "g")
    dest = tmp_path / "g.tmp"
    assert await hcp_client.data.get_to_file(url, dest, what="b/g", chunk_size=256 * 1024) == len(payload)
    assert dest.read_bytes() == payload
    assert await hcp_client.data.get_bytes(url, what="b/g") == payload


async def test_retryable_statuses_and_drops_are_retried(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    # The test PUTs one key again and again (it is about retries): an HCP namespace with the
    # overwrite option on allows that (without it the second PUT is a 409).
    hcp_emulator.configure_namespace(hcp_bucket, overwrite=True)
    source = tmp_path / "f"
    source.write_bytes(b"x" * 5000)
    url = await hcp_client.s3.presign_put(hcp_bucket, "k")
    for status in (408, 425, 429, 500, 503):
        await counts.reset()
        hcp_emulator.faults.add("data", method="PUT", status=status, count=1)
        assert await hcp_client.data.put_file(url, source, 5000, what="b/k")
        assert (await counts())[DATA_PUT] == 2, status
    await counts.reset()
    rule = hcp_emulator.faults.add("data", method="GET", drop=True, count=1)
    get_url = await hcp_client.s3.presign_get(hcp_bucket, "k")
    dest = tmp_path / "out"
    assert await hcp_client.data.get_to_file(get_url, dest, what="b/k") == 5000
    assert rule.hits == 1 and dest.read_bytes() == b"x" * 5000
    rule = hcp_emulator.faults.add("data", method="PUT", drop=True, count=1)
    assert await hcp_client.data.put_file(url, source, 5000, what="b/k")
    assert rule.hits == 1


async def test_retries_exhausted_raise_presigned_transfer_error(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, counts: Any
) -> None:
    url = await hcp_client.s3.presign_get(hcp_bucket, "k")
    await counts.reset()
    hcp_client.data.retry_deadline = 0  # throttling gets max_retries too, no time budget
    hcp_emulator.faults.add("data", method="GET", status=503, count=None)
    dest = tmp_path / "never"
    with pytest.raises(PresignedTransferError) as info:
        await hcp_client.data.get_to_file(url, dest, what=f"{hcp_bucket}/k")
    assert info.value.status_code == 503
    assert str(info.value) == f"503 Service Unavailable for {hcp_bucket}/k"
    assert (await counts())[DATA_GET] == 4  # 1 + max_retries
    assert not dest.exists()


async def test_403_and_other_4xx_raise_at_once(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, counts: Any
) -> None:
    url = await hcp_client.s3.presign_put(hcp_bucket, "k")
    for status in (403, 400):
        await counts.reset()
        hcp_emulator.faults.add("data", method="PUT", status=status, count=None)
        with pytest.raises(PresignedTransferError) as info:
            await hcp_client.data.put_bytes(url, b"x", what=f"{hcp_bucket}/k")
        assert info.value.status_code == status and "X-Amz" not in str(info.value)
        assert (await counts())[DATA_PUT] == 1
        hcp_emulator.faults.clear()


async def test_missing_object_is_404_and_creates_no_file(
    hcp_client: HCPClient, hcp_bucket: str, tmp_path: Path
) -> None:
    url = await hcp_client.s3.presign_get(hcp_bucket, "absent")
    dest = tmp_path / "absent.tmp"
    with pytest.raises(PresignedTransferError) as info:
        await hcp_client.data.get_to_file(url, dest, what=f"{hcp_bucket}/absent")
    assert info.value.status_code == 404 and "NoSuchKey" in info.value.message
    assert not dest.exists()


async def test_data_plane_session_is_pooled_and_closed(
    hcp_credentials: dict, hcp_emulator: Any, hcp_bucket: str
) -> None:
    # Two PUTs of one key (the test is about the session): the overwrite option allows that.
    hcp_emulator.configure_namespace(hcp_bucket, overwrite=True)
    client = HCPClient(**hcp_credentials, verify_ssl=False, max_connections=7)
    async with client:
        url = await client.s3.presign_put(hcp_bucket, "k")
        await client.data.put_bytes(url, b"1", what="b/k")
        session = client.data.session
        await client.data.put_bytes(url, b"2", what="b/k")
        assert client.data.session is session  # one session per client
        assert session.connector is not None and session.connector.limit == 7
    assert session.closed


# -- wire format, checked on a tiny real server ------------------------------------------------


async def test_streamed_upload_sends_content_length_not_chunked(
    recorder: tuple[str, list[dict[str, Any]], dict[str, Any]], tmp_path: Path
) -> None:
    base, seen, _ = recorder
    source = tmp_path / "f"
    source.write_bytes(os.urandom(3 * MIB + 3))
    client = HCPClient()
    try:
        await client.data.put_file(f"{base}/b/k", source, 3 * MIB + 3, what="b/k", chunk_size=MIB)
    finally:
        await client.aclose()
    headers = {name.lower(): value for name, value in seen[0]["headers"].items()}
    assert headers["content-length"] == str(3 * MIB + 3)
    assert "transfer-encoding" not in headers
    assert seen[0]["size"] == 3 * MIB + 3


async def test_presigned_url_is_sent_exactly_as_given(
    recorder: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    base, seen, _ = recorder
    path_and_query = (
        "/bkt/dir/a%20b%3Fc%23d%25e%2Bf%C3%BC/%2E%2Ex?X-Amz-Credential=AK%2F2026%2Fs3"
        "&X-Amz-Signature=abc%3D%3D&X-Amz-SignedHeaders=host"
    )
    client = HCPClient()
    try:
        await client.data.put_bytes(base + path_and_query, b"x", what="bkt/k")
        await client.data.get_bytes(base + path_and_query, what="bkt/k")
    finally:
        await client.aclose()
    assert [entry["raw_path"] for entry in seen] == [path_and_query, path_and_query]


async def test_concurrent_transfers_share_the_pool(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str
) -> None:
    urls = await hcp_client.s3.presign_bulk(hcp_bucket, [f"c/{i}" for i in range(40)], method="put_object")
    etags = await asyncio.gather(
        *(hcp_client.data.put_bytes(url, key.encode(), what=key) for key, url in urls.items())
    )
    assert len({sent.etag for sent in etags}) == 40
    listed = hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket, Prefix="c/")
    assert listed["KeyCount"] == 40


async def test_unreachable_s3_is_retried_then_fails(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = HCPClient(max_retries=2, retry_base_delay=0.01)
    url = f"http://127.0.0.1:{port}/b/k?X-Amz-Signature=feedbeef"
    try:
        with pytest.raises(PresignedTransferError) as info:
            await client.data.get_to_file(url, tmp_path / "x", what="b/k")
        assert info.value.status_code == 0 and str(info.value).endswith("for b/k")
        assert "feedbeef" not in str(info.value) and "ClientConnectorError" in str(info.value)
        with pytest.raises(PresignedTransferError, match="for b/k"):
            await client.data.get_bytes("not-a-url?X-Amz-Signature=feedbeef", what="b/k")
    finally:
        await client.aclose()
    assert not (tmp_path / "x").exists()
