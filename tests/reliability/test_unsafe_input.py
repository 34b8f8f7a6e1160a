"""Unsafe input: refused before any request when it is a parameter, a counted error of its
own file when it is a file, and never uploaded when it is the tracker or a download.

Flow-level cases run the real flows on the session's Prefect API against the emulator; "before
any request" is read from the emulator's request counts (not even a login) and from the
tracker file, which is not even created.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.bulk.validation import InvalidInputError
from rahcp_prefect.flows import BulkTransferFailed, bulk_download, bulk_upload
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker.protocol import JobState

from .helpers import (
    api_requests,
    bucket_hashes,
    bucket_listing,
    data_requests,
    flow_artifacts,
    flow_logs,
    job_tracker,
    sha256,
    summary_metric,
    without_records,
)

UNDECODABLE = sys.platform != "darwin"  # macOS refuses undecodable file names

BAD_PARAMETERS: list[tuple[dict[str, Any], str]] = [
    ({"prefix": "/abs/"}, "prefix '/abs/' is refused: it must not begin with '/'"),
    ({"prefix": "a//b/"}, "prefix 'a//b/' is refused: it must not hold '//'"),
    ({"prefix": "../x/"}, "prefix '../x/' is refused: it must not hold a '.' or '..' path segment"),
    ({"prefix": "new\nline/"}, "prefix 'new\\nline/' is refused: it holds a control character"),
    ({"bucket": "a/b"}, "bucket 'a/b' is not a valid bucket name: only lower-case letters, digits, dots and hyphens"),
    ({"bucket": "My_Bucket"}, "bucket 'My_Bucket' is not a valid bucket name"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"batch_size": -3}, "batch_size must be >= 1, got -3"),
    ({"settings_overrides": {"workers": 0}}, "settings_overrides: workers = 0: Input should be greater than or equal to 1"),
    ({"settings_overrides": {"wokers": 8}}, "settings_overrides: unknown transfer setting(s) wokers"),
    ({"settings_overrides": {"workers": "8"}}, "settings_overrides: workers must be an integer, got str '8'"),
    ({"settings_overrides": {"chunk_size": 1}}, "settings_overrides: chunk_size = 1: Value error, must be at least 64 KiB (65536 bytes), got 1 B"),
]


async def _error_of(state: Any) -> BaseException:
    assert state.is_failed(), state
    with pytest.raises(BaseException) as caught:
        await state.result()
    return caught.value


@pytest.mark.parametrize("direction", ["upload", "download"])
async def test_bad_parameters_are_refused_before_any_request(
    direction: str, saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """Each bad prefix, bucket name, batch size or settings override fails the run with an
    error naming the parameter and its value: no API request (not even the login), no tracker
    job (the tracker file is not even created), nothing written."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    dest = tmp_path / "dest"
    for bad, message in BAD_PARAMETERS:
        params = {"bucket": hcp_bucket, **saved_blocks.params(), **bad}
        if direction == "upload":
            state = await bulk_upload(source_dir=str(source), return_state=True, **params)
        else:
            state = await bulk_download(dest_dir=str(dest), return_state=True, **params)
        error = await _error_of(state)
        assert isinstance(error, InvalidInputError) and isinstance(error, ValueError), (bad, error)
        assert message in str(error), (bad, str(error))
        assert api_requests(hcp_emulator) == 0 and data_requests(hcp_emulator) == 0, bad
        assert not saved_blocks.tracker_path.exists(), f"{bad}: the tracker was opened"
    assert bucket_listing(hcp_emulator, hcp_bucket) == [] and not dest.exists()


def _write(root: Path, rel: bytes, data: bytes) -> None:
    path = os.path.join(os.fsencode(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


@pytest.mark.skipif(not UNDECODABLE, reason="macOS refuses undecodable file names")
@pytest.mark.parametrize(("tracker_kind", "cooperative"), [("sqlite", False), ("postgres", False), ("postgres", True)])
async def test_odd_files_are_counted_errors_and_excluding_them_lets_the_job_commit(
    tracker_kind: str, cooperative: bool, saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str,
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """A name that is not UTF-8, a name with a newline and a path whose key (staging prefix
    included) passes 1,024 bytes are each a counted error named in the run's exception (and
    summary), shown escaped; every other file is still sent. Excluding the three by patterns
    that match their shown form, the next run commits: the final prefix holds exactly the good
    files, byte for byte, and the tracker never held a key it could not store. On SQLite and
    PostgreSQL, alone and cooperative (whose manifest never receives the odd files)."""
    target: Any = saved_blocks.tracker_path
    if tracker_kind == "postgres":
        target = request.getfixturevalue("postgres_dsn")
        await HCPTracker(postgres_dsn=SecretStr(target)).save(saved_blocks.tracker, overwrite=True)
    job = f"odd-names-{hcp_bucket}" if cooperative else f"bulk-upload:{hcp_bucket}/final/"
    source = tmp_path / "src"
    good = {f"good-{index:02d}.txt": b"good %d" % index for index in range(10)}
    for rel, data in good.items():
        _write(source, rel.encode(), data)
    long_rel = b"/".join([b"d" * 200] * 4) + b"/" + b"f" * 180 + b".txt"  # 988 bytes, 1,040 with the staging prefix
    for rel in (b"\xff\xfe.bin", b"new\nline.txt", long_rel):
        _write(source, rel, b"odd")
    params = {"source_dir": str(source), "bucket": hcp_bucket, "prefix": "final/", **saved_blocks.params(),
              **({"job": job, "cooperative": True} if cooperative else {})}

    state = await bulk_upload(return_state=True, **params)
    error = await _error_of(state)
    assert isinstance(error, BulkTransferFailed)
    text = str(error)
    assert "3 file(s)" in text and "failed" in text, text
    assert "\\xff\\xfe.bin: UnstorableNameError: its name is not valid UTF-8 (shown escaped)" in text
    assert "new\\nline.txt: UnstorableNameError: its name holds a control character" in text
    assert "UnstorableNameError: its key would be 1040 bytes of UTF-8 with its prefix (52 bytes, staging included)" in text
    assert data_requests(hcp_emulator, "PUT") == len(good), "the odd files never blocked the others"
    if not cooperative:
        artifacts = await flow_artifacts(state.state_details.flow_run_id)
        assert summary_metric(artifacts, "failed") == 3
        assert summary_metric(artifacts, "`\\xff\\xfe.bin`").startswith("UnstorableNameError")
    with job_tracker(target, job) as tracker:
        stored = [key for key, _ in tracker.error_entries()] + list(tracker.done_keys())
    assert all(len(key.encode("utf-8")) <= 1024 for key in stored), "only storable keys reach the tracker"
    assert not any("\\x" in key or "\n" in key for key in stored), "odd files never reach the tracker"
    assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == []

    result = await bulk_upload(exclude=["\\xff\\xfe.bin", "new\\nline.txt", "d*"], **params)
    assert result["outcome"] == "committed" and result["committed"] == len(good)
    assert result["errors"] == 0
    stored = bucket_hashes(hcp_emulator, hcp_bucket)
    assert stored.pop(f"final/{MANIFEST_NAME}") and stored.pop(f"final/{MTIMES_NAME}"), "the commit writes its manifest last"
    assert without_records(stored, "final/") == {f"final/{rel}": sha256(data) for rel, data in good.items()}
    with job_tracker(target, job) as tracker:
        assert tracker.summary()["error"] == 0 and len(tracker.done_keys()) == len(good)
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committed


async def test_tracker_files_and_a_download_inside_the_source_are_never_uploaded(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """The tracker's SQLite database (with its -wal and -shm files, live during the run) lives
    in the source; a download went into the source too, and a failed one left its staging
    folder there. The upload of the source sends only the user's files; one warning per kind."""
    source = tmp_path / "src"
    mine = {"a.txt": b"a", "docs/b.txt": b"bb", "docs/deep/c.txt": b"ccc"}
    for rel, data in mine.items():
        _write(source, rel.encode(), data)
    tracker_path = source / "state" / "tracker.db"
    await HCPTracker(sqlite_path=str(tracker_path)).save(saved_blocks.tracker, overwrite=True)
    for index in range(3):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"seed/s{index}.bin", Body=b"seed %d" % index)
    down = await bulk_download(bucket=hcp_bucket, dest_dir=str(source / "restored"), prefix="seed/", **saved_blocks.params())
    assert down["moved"] == 3 and (source / "restored" / "s0.bin").exists()
    _write(source, b".other.rahcp-staging/half.bin", b"left by a failed download")
    assert {p.name for p in (source / "state").iterdir()} >= {"tracker.db"}

    state = await bulk_upload(
        source_dir=str(source), bucket=hcp_bucket, prefix="backup/", return_state=True, **saved_blocks.params()
    )
    result = await state.result()
    assert result["outcome"] == "committed" and result["committed"] == len(mine)
    stored = bucket_hashes(hcp_emulator, hcp_bucket, "backup/")
    assert stored.pop(f"backup/{MANIFEST_NAME}") and stored.pop(f"backup/{MTIMES_NAME}"), "the commit writes its manifest last"
    assert without_records(stored, "backup/") == {f"backup/{rel}": sha256(data) for rel, data in mine.items()}
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
    logs = await flow_logs(state.state_details.flow_run_id)
    warnings = [message for message in logs if message.startswith("Not uploaded: ")]
    assert len(warnings) == 3, warnings  # one per kind, not one per file
    assert any("state/tracker.db" in w and "the tracker's own file" in w for w in warnings)
    assert any("restored/ inside source_dir is a download destination" in w for w in warnings)
    assert any(".other.rahcp-staging/ inside source_dir is a download staging folder" in w for w in warnings)
