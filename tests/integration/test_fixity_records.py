"""An archive under a default retention keeps a complete fixity record, night after night.

The bulk-upload flow on the HCP-faithful emulator (MAPI ``complianceSettings.retentionDefault``,
staging in another namespace), three nights: 20 files; 5 new and 1 changed; nothing. After each
night every file under the prefix is in a fixity record (read here from the bucket, as an
archivist would), the changed file keeps its first bytes and is named as retained, and
``bulk-verify`` passes; the third night sends no PUT; ``bulk-verify`` catches a file the operator
tampered with; ``sha256sum -c`` checks a downloaded copy against the downloaded records.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.flows.verify import FixityCheckFailed, bulk_verify
from rahcp_prefect.job.manifest import parse_manifest
from rahcp_prefect.job.records import RECORDS_DIR, is_record_key

from .conftest import SavedBlocks, make_tree

PREFIX = "final/"
#: The archivist's merge of the records, newest first, the first line of a path winning (docs/fixity.md).
MERGE = "cat $(ls -r .rahcp/records/*/manifest-sha256.txt) | awk '!seen[substr($0, 67)]++' | sha256sum -c --quiet -"


@pytest.fixture
def staging_bucket(hcp_staging_bucket: str) -> str:
    return hcp_staging_bucket


def writes(emulator: Any) -> dict[tuple[str, str, str], int]:
    """Every PUT and DELETE the client sent (API and data plane) since the last reset."""
    return {key: n for key, n in emulator.request_counts.items() if key[0] in ("api", "data") and key[1] in ("PUT", "DELETE")}


def covered(emulator: Any, bucket: str) -> tuple[dict[str, str], dict[str, str]]:
    """``(the records' union, every payload object's SHA-256)`` read from the bucket: the
    records newest first back to the newest full one, the first line of a path winning."""
    stored = emulator.stored(bucket, PREFIX)
    records = sorted({key.rsplit("/", 1)[0] for key in stored if key.startswith(PREFIX + RECORDS_DIR)}, reverse=True)
    union: dict[str, str] = {}
    for folder in records:
        for path, sha in parse_manifest(stored[folder + "/manifest-sha256.txt"]).items():
            union.setdefault(path, sha)
        if folder.endswith("-full"):
            break
    payload = {key[len(PREFIX):]: hashlib.sha256(body).hexdigest() for key, body in stored.items() if not is_record_key(PREFIX, key)}
    return union, payload


@pytest.mark.timeout(300)
async def test_three_nights_on_a_retention_namespace_keep_every_file_in_a_fixity_record(
    saved_blocks: SavedBlocks, hcp_mode: Any, hcp_bucket: str, staging_bucket: str, tmp_path: Path
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, retention="+1y")
    source = tmp_path / "src"
    files = make_tree(source, 20)
    params = dict(
        source_dir=str(source), bucket=hcp_bucket, prefix=PREFIX, job="archive",
        settings_overrides={"staging_bucket": staging_bucket}, **saved_blocks.params(),
    )
    verify = dict(bucket=hcp_bucket, prefix=PREFIX, **saved_blocks.params())

    first = await bulk_upload(**params)
    assert first["outcome"] == "committed" and first["committed"] == 20 and first["record"].endswith("-full/")
    union, payload = covered(hcp_mode, hcp_bucket)
    assert union == payload and len(payload) == 20
    assert (await bulk_verify(**verify))["matches"] == 20

    changed = sorted(files)[0]
    (source / changed).write_bytes(b"changed bytes, another size")
    os.utime(source / changed, ns=(1, 1))
    for index in range(100, 105):
        (source / f"new-{index}.txt").write_bytes(f"new {index}".encode())
    second = await bulk_upload(**params)
    assert second["outcome"] == "committed" and second["committed"] == 5 and second["record"].endswith("-delta/")
    assert second["retained"] == 1 and second["retained_files"] == [PREFIX + changed]
    assert second["retained_waiting"] == 1 and list(second["retained_next_try"]) == [PREFIX + changed]
    assert second["retained_next_try"][PREFIX + changed] > "2027", "tried again when its year of retention ends"
    assert hcp_mode.stored(hcp_bucket, PREFIX + changed) == {PREFIX + changed: files[changed]}, "first bytes kept"
    union, payload = covered(hcp_mode, hcp_bucket)
    assert union == payload and len(payload) == 25
    assert (await bulk_verify(**verify))["matches"] == 25

    hcp_mode.reset_counts()
    third = await bulk_upload(**params)
    assert writes(hcp_mode) == {}, "a night with nothing to commit writes nothing"
    assert third["outcome"] == "committed" and third["committed"] == 0 and third["record"].startswith("unchanged")
    assert third["retained_waiting"] == 1 and list(third["retained_next_try"]) == [PREFIX + changed]
    assert covered(hcp_mode, hcp_bucket)[0] == payload
    assert (await bulk_verify(**verify))["matches"] == 25

    dest = tmp_path / "dest"
    await bulk_download(bucket=hcp_bucket, prefix=PREFIX, dest_dir=str(dest), job="restore", **saved_blocks.params())
    for key, body in hcp_mode.stored(hcp_bucket, PREFIX + RECORDS_DIR).items():  # the records, by any S3 tool
        (dest / key[len(PREFIX):]).parent.mkdir(parents=True, exist_ok=True)
        (dest / key[len(PREFIX):]).write_bytes(body)
    assert shutil.which("sha256sum") is not None
    for record in sorted((dest / RECORDS_DIR).glob("*/manifest-sha256.txt")):
        done = subprocess.run(["sha256sum", "-c", "--quiet", str(record.relative_to(dest))], cwd=dest, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    merged = subprocess.run(["bash", "-c", MERGE], cwd=dest, capture_output=True, text=True)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    (dest / "top-0002.txt").write_bytes(b"bit rot")
    rotted = subprocess.run(["bash", "-c", MERGE], cwd=dest, capture_output=True, text=True)
    assert rotted.returncode != 0 and "top-0002.txt: FAILED" in rotted.stdout

    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key=PREFIX + "top-0004.txt", Body=b"tampered by the operator")
    with pytest.raises(FixityCheckFailed, match="top-0004.txt"):
        await bulk_verify(**verify)


@pytest.mark.timeout(300)
async def test_a_job_whose_tracker_was_lost_learns_the_archive_from_the_union_of_the_records(
    saved_blocks: SavedBlocks, hcp_mode: Any, hcp_bucket: str, staging_bucket: str, tmp_path: Path
) -> None:
    """Night 2's root manifest could not be replaced (retention): its 5 new files are only in
    night 2's delta record. The tracker is then lost (a new SQLite file): night 3's sync knows
    every archived file from the union of the records (mtime and SHA-256) and the final listing
    (size), so it sends nothing, writes nothing and records the files as done."""
    hcp_mode.configure_namespace(hcp_bucket, retention="+1y")
    source = tmp_path / "src"
    make_tree(source, 20)
    params = dict(
        source_dir=str(source), bucket=hcp_bucket, prefix=PREFIX, job="lost",
        settings_overrides={"staging_bucket": staging_bucket}, **saved_blocks.params(),
    )
    assert (await bulk_upload(**params))["committed"] == 20
    for index in range(100, 105):
        (source / f"new-{index}.txt").write_bytes(f"new {index}".encode())
    second = await bulk_upload(**params)
    assert second["committed"] == 5 and second["manifest"].startswith("retained"), "the root manifest stays"
    root = parse_manifest(hcp_mode.stored(hcp_bucket, PREFIX + "manifest-sha256.txt")[PREFIX + "manifest-sha256.txt"], "root")
    assert len(root) == 20 and not any(path.startswith("new-") for path in root), "only the records list the 5"

    saved_blocks.tracker_path.unlink()  # the tracker is lost: a new, empty database
    for suffix in ("-wal", "-shm"):
        saved_blocks.tracker_path.with_name(saved_blocks.tracker_path.name + suffix).unlink(missing_ok=True)
    hcp_mode.reset_counts()
    third = await bulk_upload(**params)
    assert writes(hcp_mode) == {}, "every file known from the records: no PUT, no DELETE"
    assert third["outcome"] == "committed" and third["record"].startswith("unchanged")
    assert (third["new"], third["changed"], third["unchanged"], third["missing"]) == (0, 0, 25, 0)
    assert (await bulk_verify(bucket=hcp_bucket, prefix=PREFIX, **saved_blocks.params()))["matches"] == 25
