"""Part-level resume in the SDK alone (no tracker): any ``PartStore`` will do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.resume import PartStore, RecordedPart, RecordedUpload
from rahcp_prefect.testing.counter import PART_PUT

MIB = 1024 * 1024


class MemoryParts:
    """A ``PartStore`` in a dict, as an SDK user without a tracker might write one."""

    def __init__(self) -> None:
        self.uploads: dict[tuple[str, str], RecordedUpload] = {}

    def recorded_upload(self, bucket: str, key: str) -> RecordedUpload | None:
        return self.uploads.get((bucket, key))

    def record_upload(self, bucket: str, key: str, upload_id: str, part_size: int, size: int, mtime_ns: int) -> None:
        self.uploads[bucket, key] = RecordedUpload(upload_id, part_size, size, mtime_ns, {})

    def record_part(self, bucket: str, key: str, upload_id: str, number: int, etag: str, md5: str) -> None:
        self.uploads[bucket, key].parts[number] = RecordedPart(etag, md5)

    def forget_upload(self, bucket: str, key: str) -> None:
        self.uploads.pop((bucket, key), None)


async def test_parts_are_recorded_until_the_upload_completes(
    hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    store = MemoryParts()
    assert isinstance(store, PartStore)
    seen: list[int] = []
    real = store.record_part
    store.record_part = lambda *args: (seen.append(args[3]), real(*args))[1]  # type: ignore[method-assign]
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(11 * MIB))
    async with HCPClient(**hcp_credentials, multipart_chunk=5 * MIB) as client:
        await client.s3.upload_multipart(hcp_bucket, "f.bin", source, resume=store)
    assert sorted(seen) == [1, 2, 3] and store.uploads == {}


async def test_a_recorded_upload_that_is_gone_is_started_afresh(
    hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "f.bin"
    body = os.urandom(11 * MIB)
    source.write_bytes(body)
    store = MemoryParts()
    stat = source.stat()
    store.record_upload(hcp_bucket, "f.bin", "no-such-upload", 5 * MIB, stat.st_size, stat.st_mtime_ns)
    store.record_part(hcp_bucket, "f.bin", "no-such-upload", 1, '"00000000000000000000000000000000"', "0" * 32)
    hcp_emulator.reset_counts()
    async with HCPClient(**hcp_credentials, multipart_chunk=5 * MIB) as client:
        await client.s3.upload_multipart(hcp_bucket, "f.bin", source, resume=store)
    assert hcp_emulator.request_counts[PART_PUT] == 3
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="f.bin")["Body"].read() == body
    assert hcp_emulator.s3.list_multipart_uploads(Bucket=hcp_bucket).get("Uploads", []) == []
    assert store.uploads == {}
