"""Digests recorded per file: the SHA-256 and MD5 of what each upload sent and each download
received are in the tracker, and a rerun uses them."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, bulk_download, bulk_upload
from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.digests import multipart_md5
from rahcp_prefect.testing.counter import DATA_GET as GET
from rahcp_prefect.tracker import FileDigests

from .conftest import local_files, make_tree

MIB = 1024 * 1024


async def test_uploads_record_what_they_sent(hcp_credentials: dict[str, Any], hcp_bucket, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {"a.txt": b"alpha", "d/mid.bin": os.urandom(2 * MIB + 1), "big.bin": os.urandom(11 * MIB)})
    async with HCPClient(**hcp_credentials, multipart_threshold=5 * MIB, multipart_chunk=5 * MIB) as client:
        stats = await bulk_upload(BulkUploadConfig(client=client, bucket=hcp_bucket, source_dir=src, tracker=tracker, prefix="in/"))
    assert (stats.ok, stats.verified, stats.unverified) == (3, 3, 0)
    parts = [files["big.bin"][i : i + 5 * MIB] for i in range(0, 11 * MIB, 5 * MIB)]
    assert tracker.done_digests() == {
        "in/a.txt": FileDigests(5, hashlib.sha256(b"alpha").hexdigest(), hashlib.md5(b"alpha").hexdigest()),
        "in/d/mid.bin": FileDigests(
            2 * MIB + 1, hashlib.sha256(files["d/mid.bin"]).hexdigest(), hashlib.md5(files["d/mid.bin"]).hexdigest()
        ),
        "in/big.bin": FileDigests(
            11 * MIB, hashlib.sha256(files["big.bin"]).hexdigest(), multipart_md5(hashlib.md5(p).digest() for p in parts)
        ),
    }


async def test_a_download_rerun_fetches_an_object_whose_bytes_are_not_the_recorded_ones(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="k.bin", Body=b"first bytes")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="same.bin", Body=b"unchanged")
    dest = tmp_path / "dest"
    cfg = BulkDownloadConfig(client=hcp_client, bucket=hcp_bucket, dest_dir=dest, tracker=tracker)
    await bulk_download(cfg)
    assert tracker.done_digests()["k.bin"] == FileDigests(
        11, hashlib.sha256(b"first bytes").hexdigest(), hashlib.md5(b"first bytes").hexdigest()
    )
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="k.bin", Body=b"other bytes")  # same size
    hcp_emulator.reset_counts()
    stats = await bulk_download(cfg)
    assert (stats.ok, stats.skipped) == (1, 1) and hcp_emulator.request_counts[GET] == 1
    assert local_files(dest) == {"k.bin": b"other bytes", "same.bin": b"unchanged"}
    assert tracker.done_digests()["k.bin"].sha256 == hashlib.sha256(b"other bytes").hexdigest()
