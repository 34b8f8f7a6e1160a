"""Verified downloads: each file hashed as it streams and checked against the manifest's SHA-256,
else the ETag's MD5 (single-part objects); a mismatch is fetched once more, then a file error,
and the damaged bytes never land under the final name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.bulk import BulkDownloadConfig, bulk_download
from rahcp_prefect.client import HCPClient
from rahcp_prefect.testing.counter import DATA_GET as GET

from .conftest import local_files

MIB = 1024 * 1024


def cfg(client: Any, bucket: str, dest: Path, tracker: Any, **kw: Any) -> BulkDownloadConfig:
    return BulkDownloadConfig(client=client, bucket=bucket, dest_dir=dest, tracker=tracker, **kw)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("stream_threshold", [100 * MIB, 1], ids=["one-shot", "streamed"])
async def test_damaged_get_is_caught_and_fetched_again(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path, stream_threshold
) -> None:
    body = os.urandom(3 * MIB + 17)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="p/a.bin", Body=body)
    hcp_emulator.reset_counts()
    rule = hcp_emulator.faults.add("data", method="GET", damage=True, count=1)
    dest = tmp_path / "dest"
    stats = await bulk_download(
        cfg(hcp_client, hcp_bucket, dest, tracker, prefix="p/", stream_threshold=stream_threshold)
    )
    assert rule.hits == 1 and hcp_emulator.request_counts[GET] == 2
    assert (stats.ok, stats.errors, stats.verified, stats.unverified) == (1, 0, 1, 0)
    assert stats.retries >= 1
    assert local_files(dest) == {"a.bin": body}


async def test_object_replaced_in_storage_fails_against_the_manifest_and_lands_nowhere(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    original = {"p/keep.bin": os.urandom(5000), "p/swapped.bin": os.urandom(5000)}
    for key, body in original.items():
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=body)
    manifest = {key: sha256(body) for key, body in original.items()}
    # replaced directly in S3: same size, other bytes (its ETag is the MD5 of the new bytes)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="p/swapped.bin", Body=os.urandom(5000))
    hcp_emulator.reset_counts()
    errors: list[tuple[str, BaseException]] = []
    dest = tmp_path / "dest"
    stats = await bulk_download(
        cfg(hcp_client, hcp_bucket, dest, tracker, prefix="p/", manifest=manifest,
            on_error=lambda key, exc: errors.append((key, exc)))
    )
    assert (stats.ok, stats.errors, stats.verified) == (1, 1, 1)
    assert [key for key, _ in errors] == ["p/swapped.bin"]
    assert "SHA-256 of the bytes received" in str(errors[0][1]) and manifest["p/swapped.bin"] in str(errors[0][1])
    assert hcp_emulator.request_counts[GET] == 3  # keep.bin once, swapped.bin twice (retried once)
    assert local_files(dest) == {"keep.bin": original["p/keep.bin"]}  # no final name, no temp file
    assert [key for key, _ in tracker.error_entries()] == ["p/swapped.bin"]


async def test_multipart_objects_without_a_manifest_count_as_unverified(
    hcp_credentials, hcp_client, hcp_emulator, hcp_bucket, tracker, tmp_path
) -> None:
    """A multipart ETag says nothing about the bytes unless its parts are cut as this client
    cuts its ranges; without a manifest such a file is counted unverified."""
    big = os.urandom(6 * MIB)
    async with HCPClient(**hcp_credentials, multipart_threshold=5 * MIB, multipart_chunk=5 * MIB) as small_parts:
        await small_parts.s3.upload_multipart(hcp_bucket, "p/big.bin", big)
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="p/small.bin", Body=b"small")
        # the default client cuts 64 MiB ranges: the 2-part ETag cannot be recomputed
        dest = tmp_path / "dest"
        stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker, prefix="p/", stream_threshold=MIB))
        assert (stats.ok, stats.verified, stats.unverified) == (2, 1, 1)
        # with the manifest's SHA-256 both are verified
        manifest = {"p/big.bin": sha256(big), "p/small.bin": sha256(b"small")}
        again = tmp_path / "again"
        stats = await bulk_download(
            cfg(hcp_client, hcp_bucket, again, tracker, prefix="p/", manifest=manifest, skip_done=False,
                stream_threshold=MIB)
        )
        assert (stats.ok, stats.verified, stats.unverified) == (2, 2, 0)
        assert local_files(again) == {"big.bin": big, "small.bin": b"small"}
        assert tracker.done_digests()["p/big.bin"].sha256 == sha256(big)  # ranged: SHA-256 too
        # ranges cut like the parts: the multipart ETag itself is a check
        third = tmp_path / "third"
        stats = await bulk_download(
            cfg(small_parts, hcp_bucket, third, tracker, prefix="p/", skip_done=False, stream_threshold=MIB)
        )
        assert (stats.ok, stats.verified, stats.unverified) == (2, 2, 0)


async def test_a_damaged_ranged_download_against_the_manifest_is_fetched_again(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    body = os.urandom(3 * MIB)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="r.bin", Body=body)
    rule = hcp_emulator.faults.add("data", method="GET", damage=True, count=1)
    dest = tmp_path / "dest"
    stats = await bulk_download(
        cfg(hcp_client, hcp_bucket, dest, tracker, manifest={"r.bin": sha256(body)}, stream_threshold=MIB)
    )
    assert rule.hits == 1 and (stats.ok, stats.errors, stats.verified) == (1, 0, 1)
    assert local_files(dest) == {"r.bin": body}


async def test_local_file_of_the_right_size_but_other_bytes_is_fetched_again(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="same.bin", Body=b"right bytes")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="other.bin", Body=b"right bytes")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "same.bin").write_bytes(b"right bytes")  # the listed size and the ETag's MD5
    (dest / "other.bin").write_bytes(b"wrong bytes")  # the listed size, other bytes
    hcp_emulator.reset_counts()
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker))
    assert (stats.ok, stats.skipped, stats.verified) == (1, 1, 1)
    assert hcp_emulator.request_counts[GET] == 1
    assert local_files(dest) == {"same.bin": b"right bytes", "other.bin": b"right bytes"}
    assert tracker.done_keys() == {"same.bin", "other.bin"}


async def test_checksums_off_checks_nothing(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="k", Body=b"payload")
    hcp_emulator.faults.add("data", method="GET", damage=True, count=1)
    dest = tmp_path / "dest"
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker, verify_checksums=False))
    assert (stats.ok, stats.verified, stats.unverified) == (1, 0, 1)
    assert (dest / "k").read_bytes() != b"payload"  # what "off" costs: damage goes unseen
