"""Ranged downloads (``client.ranged``) against the emulator's real S3: parallel ranges into one
file, the ETag check before the caller may use it, and resume from the recorded ranges."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.digests import Hasher
from rahcp_prefect.client.errors import ChecksumMismatchError
from rahcp_prefect.client.ranged import RangedDownload, sidecar_of

MIB = 1024 * 1024
RANGE = 5 * MIB


def _ranged(client: HCPClient, url: str, temp: Path, size: int, etag: str | None) -> RangedDownload:
    return RangedDownload(client.data, url, temp, size, etag, range_size=RANGE, concurrency=3, what="b/k")


async def _stored(client: HCPClient, emulator: Any, bucket: str, size: int) -> tuple[bytes, str, str]:
    """A random object of ``size`` bytes stored as ``k``: its bytes, ETag and a GET URL."""
    body = os.urandom(size)
    etag = emulator.s3.put_object(Bucket=bucket, Key="k", Body=body)["ETag"]
    return body, etag, await client.s3.presign_get(bucket, "k")


def _record(temp: Path, size: int, etag: str, lines: str) -> None:
    """The sidecar a killed run leaves: the header, then one finished range per line."""
    header = {"format": 1, "size": size, "etag": etag, "range_size": RANGE}
    sidecar_of(temp).write_text(json.dumps(header) + "\n" + lines)


def _gets(emulator: Any) -> int:
    return emulator.request_counts[("data", "GET", "/{bucket}/{key}")]


async def test_ranges_land_byte_identical_and_checked(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    body, etag, url = await _stored(hcp_client, hcp_emulator, hcp_bucket, 23 * MIB + 7)
    hcp_emulator.reset_counts()
    temp = tmp_path / "k.part"
    result = await _ranged(hcp_client, url, temp, len(body), etag).run()
    assert (result.fetched, result.resumed, result.verified) == (5, 0, True)
    assert temp.read_bytes() == body
    assert not sidecar_of(temp).exists(), "the record goes once the file is whole"
    assert _gets(hcp_emulator) == 5


async def test_a_multipart_object_is_checked_part_by_part(
    hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    body = os.urandom(12 * MIB)
    async with HCPClient(**hcp_credentials, multipart_chunk=RANGE) as client:
        etag = await client.s3.upload_multipart(hcp_bucket, "mp", body)
        url = await client.s3.presign_get(hcp_bucket, "mp")
        result = await _ranged(client, url, tmp_path / "mp.part", len(body), etag).run()
    assert etag.endswith('-3"') and result.verified
    assert (tmp_path / "mp.part").read_bytes() == body


async def test_recorded_ranges_are_kept_and_only_the_missing_fetched(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    body, etag, url = await _stored(hcp_client, hcp_emulator, hcp_bucket, 4 * RANGE)
    temp = tmp_path / "k.part"
    # What a run killed after ranges 0 and 2 leaves: the file at full size, those two written.
    with open(temp, "wb") as handle:
        handle.truncate(len(body))
        for index in (0, 2):
            handle.seek(index * RANGE)
            handle.write(body[index * RANGE : (index + 1) * RANGE])
    _record(temp, len(body), etag, "0\n2\n1")  # "1" torn: not a finished line
    hcp_emulator.reset_counts()
    result = await _ranged(hcp_client, url, temp, len(body), etag).run()
    assert (result.fetched, result.resumed, result.verified) == (2, 2, True)
    assert _gets(hcp_emulator) == 2
    assert hashlib.sha256(temp.read_bytes()).digest() == hashlib.sha256(body).digest()


async def test_damaged_recorded_ranges_fail_the_check_and_are_removed(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    body, etag, url = await _stored(hcp_client, hcp_emulator, hcp_bucket, 2 * RANGE)
    temp = tmp_path / "k.part"
    temp.write_bytes(b"\0" * RANGE + body[RANGE:])  # range 0 recorded, but its bytes are not the object's
    _record(temp, len(body), etag, "0\n")
    with pytest.raises(ChecksumMismatchError, match="do not match"):
        await _ranged(hcp_client, url, temp, len(body), etag).run()
    assert not temp.exists() and not sidecar_of(temp).exists()


async def test_a_record_of_another_object_is_not_resumed(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """The object changed since the ranges were written (another ETag): start afresh."""
    body, etag, url = await _stored(hcp_client, hcp_emulator, hcp_bucket, 2 * RANGE)
    temp = tmp_path / "k.part"
    temp.write_bytes(os.urandom(2 * RANGE))
    _record(temp, len(body), '"0123456789abcdef0123456789abcdef"', "0\n1\n")
    hcp_emulator.reset_counts()
    result = await _ranged(hcp_client, url, temp, len(body), etag).run()
    assert (result.fetched, result.resumed) == (2, 0)
    assert temp.read_bytes() == body


async def test_a_range_fetched_again_under_the_hashing_is_hashed_over(tmp_path: Path) -> None:
    """Hashing follows the bytes as they land. A GET cut after it wrote other bytes (which the
    hasher already read) and retried from the start must not leave the digest of those bytes:
    the check passes on the bytes finally on disk."""
    body = os.urandom(3 * RANGE)
    attempts = 0

    async def serve(request: web.Request) -> web.StreamResponse:
        nonlocal attempts
        first, last = (int(v) for v in request.headers["Range"].removeprefix("bytes=").split("-"))
        headers = {"Content-Range": f"bytes {first}-{last}/{len(body)}", "Content-Length": str(last - first + 1)}
        response = web.StreamResponse(status=206, headers=headers)
        await response.prepare(request)
        if first == 0:
            attempts += 1
            if attempts == 1:  # other bytes, a pause for the hasher to read them, then the cut
                await response.write(b"\0" * (RANGE - MIB))
                await asyncio.sleep(0.5)
                assert request.transport is not None
                request.transport.close()
                return response
        await response.write(body[first : last + 1])
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = HCPClient(retry_base_delay=0.01)
    hasher = Hasher(md5=False, sha256=True)
    try:
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        temp = tmp_path / "k.part"
        ranged = RangedDownload(
            client.data, f"http://127.0.0.1:{port}/b/k", temp, len(body), etag,
            range_size=RANGE, concurrency=1, what="b/k", hasher=hasher,
        )
        result = await ranged.run()
    finally:
        await client.aclose()
        await runner.cleanup()
    assert attempts == 2 and client.data.retries == 1
    assert result.verified and temp.read_bytes() == body
    assert hasher.sha256 == hashlib.sha256(body).hexdigest()


async def test_a_part_file_with_another_hard_link_is_never_resumed_into(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """A part file and record as a killed run leaves them, but the part file is also another
    file (a hard link): the download starts afresh in a new file, the other one is untouched."""
    body, etag, url = await _stored(hcp_client, hcp_emulator, hcp_bucket, 2 * RANGE)
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"\0" * len(body))
    temp = tmp_path / "k.part"
    os.link(victim, temp)
    _record(temp, len(body), etag, "0\n")
    hcp_emulator.reset_counts()
    result = await _ranged(hcp_client, url, temp, len(body), etag).run()
    assert (result.fetched, result.resumed, result.verified) == (2, 0, True)
    assert temp.read_bytes() == body and victim.read_bytes() == b"\0" * len(body)
    assert _gets(hcp_emulator) == 2
