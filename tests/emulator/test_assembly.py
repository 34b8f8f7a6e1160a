"""The emulator's CompleteMultipartUpload (``testing.assembly``): what moto's would store and
answer, from one copy of the parts."""

from __future__ import annotations

import hashlib
import os
from typing import Any

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


def test_without_copy_file_range_the_parts_are_copied_through_memory(
    hcp_emulator: HCPEmulator, hcp_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def unsupported(*args: Any) -> int:
        calls.append(1)
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(assembly.os, "copy_file_range", unsupported)
    parts = _parts()
    _upload(hcp_emulator.s3, hcp_bucket, "fallback.bin", parts)
    assert calls, "the file-to-file copy was not tried"
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="fallback.bin")["Body"].read() == b"".join(parts)


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
