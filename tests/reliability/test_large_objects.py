"""Large objects: a slow or unanswered CompleteMultipartUpload never fails (or doubles) a file.

The complete gets a timeout scaled to the object's size, so a 40 s complete under the default 30 s
request timeout simply succeeds; a complete whose answer is lost after the store completed is
retried, answered "no such upload", and accepted after a HEAD shows the object holds the parts
sent. Through the ``bulk-upload`` flow, asserting the final prefix byte for byte, the request
counts and the open multipart uploads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPCredentials
from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.completion import CompletionUnknown, multipart_etag
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.counter import PART_PUT
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks

from .helpers import bucket_hashes, bucket_listing, open_multipart_uploads, sha256, without_manifest

MIB = 1024 * 1024
COMPLETE = r"/multipart/.+/complete$"
LARGE = 12 * MIB + 12345
"""Three parts of the test settings' 5 MiB chunk (threshold 8 MiB)."""


def _source(root: Path) -> dict[str, str]:
    root.mkdir(parents=True)
    files = {"big.bin": os.urandom(LARGE), "small.txt": b"small\n" * 100}
    for rel, body in files.items():
        (root / rel).write_bytes(body)
    return {rel: sha256(body) for rel, body in files.items()}


def _part_etags(body: bytes, part: int) -> list[str]:
    return [f'"{hashlib.md5(body[i:i + part]).hexdigest()}"' for i in range(0, len(body), part)]


async def _default_timeout_credentials(blocks: SavedBlocks, credentials: dict[str, Any]) -> None:
    """The saved credentials with the default 30 s request timeout (the fixture's is 10 s)."""
    await HCPCredentials(
        endpoint=credentials["endpoint"], username=credentials["username"],
        password=SecretStr(credentials["password"]), tenant=credentials["tenant"],
        retry_base_delay=0.01, max_retries=2,
    ).save(blocks.credentials, overwrite=True)


def _count(emulator: Any, method: str, route: str) -> int:
    return emulator.request_counts[("api", method, route)]


def _check_final(emulator: Any, bucket: str, expected: dict[str, str]) -> None:
    assert without_manifest(bucket_hashes(emulator, bucket, "final/")) == {f"final/{rel}": h for rel, h in expected.items()}
    assert bucket_listing(emulator, bucket, STAGING_ROOT) == []
    assert open_multipart_uploads(emulator, bucket) == []


@pytest.mark.slow
async def test_a_40_s_complete_under_the_default_30_s_timeout_ends_committed(
    saved_blocks: SavedBlocks, hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    await _default_timeout_credentials(saved_blocks, hcp_credentials)
    expected = _source(tmp_path / "src")
    slow = hcp_emulator.faults.add("api", method="POST", path=COMPLETE, delay=40.0, count=None)

    result = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="final/", **saved_blocks.params()
    )

    assert slow.hits == 1, "one complete, waited for: not timed out and retried"
    assert result["outcome"] == "committed" and result["committed"] == 2
    assert result["errors"] == 0 and result["api_retries"] == 0
    _check_final(hcp_emulator, hcp_bucket, expected)


async def test_a_complete_whose_answer_is_lost_counts_as_done_once(
    saved_blocks: SavedBlocks, hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    await _default_timeout_credentials(saved_blocks, hcp_credentials)
    expected = _source(tmp_path / "src")
    lost = hcp_emulator.faults.add("api", method="POST", path=COMPLETE, drop_answer=True, count=1)

    result = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="final/", **saved_blocks.params()
    )

    assert lost.hits == 1
    assert result["outcome"] == "committed" and result["committed"] == 2
    assert result["ok"] == 2 and result["errors"] == 0
    complete_route = "/buckets/{bucket}/multipart/{key:path}/complete"
    assert _count(hcp_emulator, "POST", complete_route) == 2, "the lost answer, then 'no such upload'"
    assert _count(hcp_emulator, "POST", "/buckets/{bucket}/multipart/{key:path}") == 1, "no second upload"
    assert hcp_emulator.request_counts[("data", "PUT", "/{bucket}/{key}?partNumber")] == 3, "parts sent once"
    _check_final(hcp_emulator, hcp_bucket, expected)


async def test_the_multipart_etag_is_the_one_s3_computes(
    hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str
) -> None:
    body = os.urandom(11 * MIB)
    async with HCPClient(**hcp_credentials, multipart_chunk=5 * MIB) as client:
        etag = await client.s3.upload_multipart(hcp_bucket, "k", body, concurrency=2)
    head = hcp_emulator.s3.head_object(Bucket=hcp_bucket, Key="k")
    assert head["ETag"] == etag == multipart_etag(_part_etags(body, 5 * MIB))
    assert etag.endswith('-3"')


async def test_a_complete_answered_404_for_an_object_that_is_not_there_fails_without_abort(
    hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str
) -> None:
    """"No such upload" and no object with the parts' ETag: an error, and the upload is left to
    cleanup (it is not aborted: whoever answered may still be completing it)."""
    body = os.urandom(11 * MIB)
    hcp_emulator.faults.add("api", method="POST", path=COMPLETE, status=404, count=1)
    async with HCPClient(**hcp_credentials, multipart_chunk=5 * MIB, retry_base_delay=0.01) as client:
        with pytest.raises(CompletionUnknown, match="does not hold its parts"):
            await client.s3.upload_multipart(hcp_bucket, "gone.bin", body)
    assert open_multipart_uploads(hcp_emulator, hcp_bucket) == ["gone.bin"]
    assert bucket_listing(hcp_emulator, hcp_bucket) == []


async def test_a_refused_complete_is_aborted(
    hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str
) -> None:
    """A 400 on the first attempt is a definite "not completed": the upload is aborted."""
    hcp_emulator.faults.add("api", method="POST", path=COMPLETE, status=400, count=1)
    async with HCPClient(**hcp_credentials, multipart_chunk=5 * MIB, retry_base_delay=0.01) as client:
        with pytest.raises(Exception) as raised:
            await client.s3.upload_multipart(hcp_bucket, "refused.bin", os.urandom(11 * MIB))
    assert not isinstance(raised.value, CompletionUnknown) and raised.value.status_code == 400
    assert open_multipart_uploads(hcp_emulator, hcp_bucket) == []


def test_the_complete_timeout_scales_with_the_size() -> None:
    from rahcp_prefect.client.config import GIB, ClientConfig

    config = ClientConfig.build()
    assert config.complete_timeout(0) == 120.0
    assert config.complete_timeout(GIB) == 240.0
    assert config.complete_timeout(50 * GIB) == 120.0 + 50 * 120.0
    slow_store = ClientConfig.build(timeout=300, complete_timeout_per_gib=600)
    assert slow_store.complete_timeout(2 * GIB) == 300 + 1200


# -- large downloads in parallel ranges --------------------------------------------------------

RANGE = 5 * MIB
RANGES = 12
DOWNLOAD_SETTINGS = {"stream_threshold": 8 * MIB, "multipart_concurrency": 2}


@pytest.fixture
async def short_lease(saved_blocks: SavedBlocks) -> SavedBlocks:
    """The saved blocks with a 3 s lease, so a killed run's locks expire quickly."""
    from rahcp_prefect.blocks import HCPTracker

    await HCPTracker(sqlite_path=str(saved_blocks.tracker_path), lease_seconds=3.0).save(
        saved_blocks.tracker, overwrite=True
    )
    return saved_blocks


def _recorded_ranges(sidecar: Path) -> set[int]:
    try:
        lines = sidecar.read_text().split("\n")[1:-1]
    except OSError:
        return set()
    return {int(line) for line in lines if line.isdigit()}


@pytest.mark.slow
@pytest.mark.parametrize("changed", [False, True], ids=["same-object", "object-replaced"])
async def test_a_ranged_download_killed_half_way_resumes_with_the_missing_ranges(
    short_lease: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, changed: bool
) -> None:
    from rahcp_prefect.bulk.paths import temp_name
    from rahcp_prefect.client.ranged import sidecar_of
    from rahcp_prefect.flows import bulk_download
    from rahcp_prefect.flows.download import staging_dir_for

    from .helpers import partial_files, tree_hashes
    from .test_crashes import _kill_when

    body = os.urandom(RANGES * RANGE - 1000)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="data/big.bin", Body=body)
    dest = tmp_path / "dest"
    temp = staging_dir_for(dest.resolve()) / temp_name("big.bin")
    params = {
        "bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/",
        "settings_overrides": DOWNLOAD_SETTINGS, **short_lease.params(),
    }
    hcp_emulator.faults.add("data", method="GET", delay=0.4, count=None)
    _kill_when("download", params, tmp_path / "run.log", lambda: len(_recorded_ranges(sidecar_of(temp))) >= 4)
    hcp_emulator.faults.clear()

    kept = _recorded_ranges(sidecar_of(temp))
    assert 4 <= len(kept) < RANGES, "killed half-way, with the finished ranges recorded"
    assert temp.stat().st_size == len(body)
    for index in kept:
        with temp.open("rb") as handle:
            handle.seek(index * RANGE)
            assert handle.read(RANGE) == body[index * RANGE : (index + 1) * RANGE]
    assert not dest.exists() or list(dest.iterdir()) == []
    if changed:
        body = os.urandom(len(body))
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="data/big.bin", Body=body)

    hcp_emulator.reset_counts()
    result = await bulk_download(**params)

    assert result["outcome"] == "complete" and result["ok"] == 1 and result["moved"] == 1
    gets = hcp_emulator.request_counts[("data", "GET", "/{bucket}/{key}")]
    # the missing ranges, plus the download's one look for the prefix's manifest
    assert gets == (RANGES if changed else RANGES - len(kept)) + 1, "only the missing ranges fetched"
    assert tree_hashes(dest) == {"big.bin": sha256(body)}
    assert partial_files(tmp_path) == [] and not staging_dir_for(dest.resolve()).exists()


# -- part-level resume of multipart uploads ------------------------------------------------------

PART = 5 * MIB  # the test settings' multipart_chunk


def _write_large(path: Path, parts: int) -> str:
    """``parts`` x 5 MiB of random-looking bytes, fast: one random MiB, varied per MiB."""
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for index in range(parts * PART // MIB):
            chunk = index.to_bytes(8, "little") + os.urandom(8) + block[16:]
            handle.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def _recorded_parts(tracker_path: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(tracker_path, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM rahcp_parts").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def _open_uploads_via_api(emulator: Any, bucket: str) -> list[str]:
    import httpx

    token = emulator.issue_token("tester", "dev-ai")
    answer = httpx.get(
        f"{emulator.base_url}/buckets/{bucket}/uploads", headers={"Authorization": f"Bearer {token}"}
    )
    answer.raise_for_status()
    return [upload["Key"] for upload in answer.json()["uploads"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parts", "kill_at", "changed"), [(60, 20, False), (12, 4, True)], ids=["300MiB-unchanged", "60MiB-changed"]
)
async def test_an_upload_killed_during_its_parts_resumes_with_the_missing_ones(
    short_lease: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path,
    parts: int, kill_at: int, changed: bool,
) -> None:
    from .test_crashes import _kill_when

    source = tmp_path / "src" / "video.bin"
    expected = _write_large(source, parts)
    params = {"source_dir": str(source.parent), "bucket": hcp_bucket, "prefix": "final/", **short_lease.params()}
    hcp_emulator.faults.add("data", method="PUT", delay=0.2, count=None)
    _kill_when("upload", params, tmp_path / "run.log", lambda: _recorded_parts(short_lease.tracker_path) >= kill_at)
    hcp_emulator.faults.clear()

    recorded = _recorded_parts(short_lease.tracker_path)
    assert kill_at <= recorded < parts, "killed during the parts, with the finished ones recorded"
    assert len(_open_uploads_via_api(hcp_emulator, hcp_bucket)) == 1, "the dead run's upload is still open"
    if changed:
        expected = _write_large(source, parts)  # same size, other bytes, a later mtime
        os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000_000))

    hcp_emulator.reset_counts()
    result = await bulk_upload(**params)

    assert result["outcome"] == "committed" and result["committed"] == 1 and result["errors"] == 0
    sent = hcp_emulator.request_counts[PART_PUT]
    if changed:
        assert sent == parts, "a changed file is uploaded afresh, never completed from stale parts"
    else:
        # a part the server lists beyond the record (stored just before the kill) is kept too,
        # once its region's MD5 matches (tests/bulk/test_part_resume.py counts that exactly)
        assert sent <= parts - recorded, "only the parts the dead run had not finished are sent"
    assert without_manifest(bucket_hashes(hcp_emulator, hcp_bucket, "final/")) == {"final/video.bin": expected}
    assert _open_uploads_via_api(hcp_emulator, hcp_bucket) == [], "nothing left open"
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
    assert _recorded_parts(short_lease.tracker_path) == 0, "the record goes with the completed upload"
