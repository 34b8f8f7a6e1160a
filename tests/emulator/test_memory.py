"""The emulator forgets what is deleted: moto's objects are freed once gone
(``testing.moto_memory``), so a long run of benchmarks or nights does not grow it."""

from __future__ import annotations

import gc
import uuid

from moto.s3.models import FakeAcl, FakeKey

from rahcp_prefect.testing import HCPEmulator

MIB = 1024 * 1024


def _tracked() -> tuple[int, int]:
    gc.collect()
    return len(FakeKey.instances_tracked), len(FakeAcl.instances_tracked)  # type: ignore[attr-defined]


def test_deleted_objects_are_freed_and_live_ones_stay_whole(hcp_emulator: HCPEmulator) -> None:
    s3 = hcp_emulator.s3
    bucket = hcp_emulator.create_bucket(f"freed-{uuid.uuid4().hex[:8]}")
    # a multipart object: its parts' keys go, its joined bytes must stay
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    bodies = [b"a" * MIB, b"b" * 1000]
    parts = [
        {"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=n, Body=body)["ETag"]}
        for n, body in enumerate(bodies, 1)
    ]
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={"Parts": parts})
    s3.put_object(Bucket=bucket, Key="kept", Body=b"still here")
    before = _tracked()
    for round_ in range(3):
        for i in range(100):
            s3.put_object(Bucket=bucket, Key=f"gone/{i}", Body=bytes([round_]) * 1000)
        assert s3.get_object(Bucket=bucket, Key="gone/7")["Body"].read() == bytes([round_]) * 1000
        for start in (0, 50):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"gone/{i}"} for i in range(start, start + 50)]})
    after = _tracked()
    assert after[0] - before[0] < 10, f"{after[0] - before[0]} deleted keys still held by moto"
    assert after[1] - before[1] < 10, f"{after[1] - before[1]} ACLs of deleted keys still held by moto"
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"still here"
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(bodies)
