"""Part-level resume after ``kill -9``: the rerun sends only the parts the server lacks.

The child sends a 5-part file one part at a time and is killed right after the server stored
part 3, once with part 3 recorded and once with its record lost (killed between the server's
answer and the record). Either way the rerun keeps parts 1 to 3: the lost record is proven by
the MD5 of that region of the unchanged file, read locally, against the listed ETag.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.client import HCPClient
from rahcp_prefect.testing.counter import PART_PUT
from rahcp_prefect.testing.fixtures import TEST_PASSWORD, TEST_USERNAME
from rahcp_prefect.tracker import SqliteTracker

CHILD = Path(__file__).with_name("parts_child.py")
MIB = 1024 * 1024


def kill_after_part_3(emulator: Any, bucket: str, source: Path, db: Path, when: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    args = [emulator.base_url, bucket, "big.bin", str(source), str(db), TEST_USERNAME, TEST_PASSWORD, when]
    proc = subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "3", f"child ended early: {proc.stderr.read() if proc.stderr else ''}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.timeout(180)
@pytest.mark.parametrize("when", ["after", "before"], ids=["recorded", "record-lost"])
async def test_the_rerun_sends_only_the_two_missing_parts(
    hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any], tmp_path: Path, when: str
) -> None:
    source, db = tmp_path / "big.bin", tmp_path / "tracker.db"
    body = os.urandom(23 * MIB)  # 5 parts of 5 MiB (the last 3 MiB)
    source.write_bytes(body)
    kill_after_part_3(hcp_emulator, hcp_bucket, source, db, when)
    with SqliteTracker(db, job="parts") as tracker:
        recorded = tracker.recorded_upload(hcp_bucket, "big.bin")
        assert recorded is not None and sorted(recorded.parts) == ([1, 2, 3] if when == "after" else [1, 2])
        hcp_emulator.reset_counts()
        async with HCPClient(**hcp_credentials, multipart_chunk=5 * MIB) as client:
            await client.s3.upload_multipart(hcp_bucket, "big.bin", source, concurrency=1, resume=tracker)
        assert tracker.recorded_upload(hcp_bucket, "big.bin") is None
    assert hcp_emulator.request_counts[PART_PUT] == 2
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="big.bin")["Body"].read() == body
    assert hcp_emulator.s3.list_multipart_uploads(Bucket=hcp_bucket).get("Uploads", []) == []


@pytest.mark.timeout(180)
async def test_a_listed_part_of_other_bytes_is_sent_again(
    hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any], tmp_path: Path
) -> None:
    """The proof is the bytes: a region rewritten in place (size and mtime put back) no longer
    hashes to the listed ETag, so that part is sent again and the object is the file's bytes."""
    source, db = tmp_path / "big.bin", tmp_path / "tracker.db"
    source.write_bytes(os.urandom(23 * MIB))
    kill_after_part_3(hcp_emulator, hcp_bucket, source, db, "before")
    stat = source.stat()
    body = bytearray(source.read_bytes())
    body[11 * MIB] ^= 0xFF  # inside part 3, whose record was lost
    source.write_bytes(bytes(body))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with SqliteTracker(db, job="parts") as tracker:
        hcp_emulator.reset_counts()
        async with HCPClient(**hcp_credentials, multipart_chunk=5 * MIB) as client:
            await client.s3.upload_multipart(hcp_bucket, "big.bin", source, concurrency=1, resume=tracker)
    assert hcp_emulator.request_counts[PART_PUT] == 3
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="big.bin")["Body"].read() == bytes(body)
