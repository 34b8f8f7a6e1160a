"""The emulator's CompleteMultipartUpload (``testing.assembly``): what moto's would store and
answer, with the parts joined in place of copied."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from rahcp_prefect.testing import HCPEmulator, assembly

MIB = 1024 * 1024
# A part of moto's in-memory size (under 5 MiB - 1 KiB) only fits last; the others are files.
PART_SIZES = (5 * MIB + 17, 6 * MIB, 300_001)


def _upload(s3: Any, bucket: str, key: str, parts: list[bytes], **create: Any) -> dict[str, Any]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    sent = []
    for number, body in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create else {}
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra)["ETag"]
        sent.append({"PartNumber": number, "ETag": etag})
    return dict(s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent}))


def _multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def _parts() -> list[bytes]:
    return [os.urandom(size) for size in PART_SIZES]


def test_completed_object_holds_the_parts_in_order_with_the_multipart_etag(
    hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    parts = _parts()
    done = _upload(hcp_emulator.s3, hcp_bucket, "big.bin", parts)
    assert done["ETag"] == _multipart_etag(parts)
    got = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="big.bin")
    assert got["ContentLength"] == sum(PART_SIZES)
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == done["ETag"]
    assert hcp_emulator.s3.list_multipart_uploads(Bucket=hcp_bucket).get("Uploads", []) == []


def test_ranges_across_part_boundaries_read_the_joined_bytes(
    hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    parts = _parts()
    joined = b"".join(parts)
    _upload(hcp_emulator.s3, hcp_bucket, "ranged.bin", parts)
    url = hcp_emulator.s3.generate_presigned_url("get_object", Params={"Bucket": hcp_bucket, "Key": "ranged.bin"})
    boundary = PART_SIZES[0]
    for first, last in [(boundary - 5, boundary + 5), (0, len(joined) - 1), (len(joined) - 3, len(joined) + 50)]:
        got = httpx.get(url, headers={"Range": f"bytes={first}-{last}"})
        assert got.status_code == 206
        assert got.content == joined[first : last + 1]
    suffix = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="ranged.bin", Range="bytes=-7")["Body"].read()
    assert suffix == joined[-7:]


def test_a_joined_object_is_copied_overwritten_and_deleted_like_any_other(
    hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    s3 = hcp_emulator.s3
    parts = _parts()
    _upload(s3, hcp_bucket, "joined.bin", parts)
    s3.copy_object(Bucket=hcp_bucket, Key="copy.bin", CopySource={"Bucket": hcp_bucket, "Key": "joined.bin"})
    assert s3.get_object(Bucket=hcp_bucket, Key="copy.bin")["Body"].read() == b"".join(parts)
    s3.put_object(Bucket=hcp_bucket, Key="joined.bin", Body=b"small now")
    assert s3.get_object(Bucket=hcp_bucket, Key="joined.bin")["Body"].read() == b"small now"
    s3.delete_object(Bucket=hcp_bucket, Key="copy.bin")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=hcp_bucket)["Contents"]] == ["joined.bin"]


def test_joined_parts_read_as_one_file() -> None:
    import io

    pieces = [b"abc", b"", b"defgh", b"ij"]
    joined = assembly.JoinedParts([(io.BytesIO(p), len(p)) for p in pieces])
    assert joined.size == 10
    assert joined.read() == b"abcdefghij"
    joined.seek(2)
    assert (joined.read(4), joined.tell()) == (b"cdef", 6)
    joined.seek(-3, io.SEEK_END)
    assert joined.read(100) == b"hij"
    assert joined.read() == b""
    short = assembly.JoinedParts([(io.BytesIO(b"ab"), 3)])
    with pytest.raises(OSError, match="part 1 of a completed object is short"):
        short.read()
    joined.close()
    assert joined.closed


def test_an_upload_that_asked_for_a_checksum_keeps_moto_s_complete(
    hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    parts = _parts()
    _upload(hcp_emulator.s3, hcp_bucket, "summed.bin", parts, ChecksumAlgorithm="SHA256")
    head = hcp_emulator.s3.head_object(Bucket=hcp_bucket, Key="summed.bin", ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256"), head
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="summed.bin")["Body"].read() == b"".join(parts)


def test_a_wrong_part_etag_completes_nothing(hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    s3 = hcp_emulator.s3
    upload_id = s3.create_multipart_upload(Bucket=hcp_bucket, Key="wrong.bin")["UploadId"]
    s3.upload_part(Bucket=hcp_bucket, Key="wrong.bin", UploadId=upload_id, PartNumber=1, Body=b"x" * 10)
    with pytest.raises(ClientError, match="InvalidPart"):
        s3.complete_multipart_upload(
            Bucket=hcp_bucket, Key="wrong.bin", UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]},
        )
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=hcp_bucket)["Uploads"]] == [upload_id]
    with pytest.raises(ClientError, match="NoSuchKey|404"):
        s3.head_object(Bucket=hcp_bucket, Key="wrong.bin")
