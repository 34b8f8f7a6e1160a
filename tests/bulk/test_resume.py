"""Interrupt and resume: SIGKILL a bulk run in a subprocess, then finish it with the same tracker.

After the kill, a rerun must complete the job without sending again any file the tracker had
recorded as done, and every file must end byte-identical (no partial or temporary file left).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from rahcp_prefect.bulk import (
    BulkDownloadConfig,
    BulkUploadConfig,
    bulk_download,
    bulk_upload,
)
from rahcp_prefect.testing.fixtures import TEST_PASSWORD, TEST_USERNAME
from rahcp_prefect.tracker import SqliteTracker

from .conftest import content, local_files, make_tree

CHILD = Path(__file__).with_name("resume_child.py")
MIB = 1024 * 1024
FILES = 150


def start_child(mode: str, emulator: Any, bucket: str, folder: Path, db: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode, emulator.base_url, bucket, str(folder), str(db), TEST_USERNAME, TEST_PASSWORD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_and_kill(mode: str, emulator: Any, bucket: str, folder: Path, db: Path, after: int) -> None:
    """Start the child and SIGKILL it once it reports ``after`` more files done."""
    proc = start_child(mode, emulator, bucket, folder, db)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if int(line) >= after:
                break
        else:
            raise AssertionError(f"child ended before {after} files: {proc.stderr.read() if proc.stderr else ''}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def assert_done_means_identical(done: set[str], expected: dict[str, bytes], actual: dict[str, bytes]) -> None:
    """Every key the tracker holds as done is really there, byte for byte (never a partial file)."""
    for key in done:
        assert actual.get(key) == expected[key], f"{key} is marked done but not identical"


def done_keys(db: Path) -> set[str]:
    with SqliteTracker(db, job="resume") as tracker:
        return tracker.done_keys()


def record_calls(client: Any, names: list[str], owner: Any = None) -> list[str]:
    """Record the ``what`` (bucket/key) or key of every call to ``owner.<name>``."""
    owner = owner or client.data
    sent: list[str] = []
    for name in names:
        real = getattr(owner, name)

        async def wrapper(*args: Any, _real: Any = real, **kw: Any) -> Any:
            sent.append(kw["what"].split("/", 1)[1].split(" (range ")[0] if "what" in kw else args[1])
            return await _real(*args, **kw)

        setattr(owner, name, wrapper)
    return sent


async def test_kill_mid_upload_then_resume(hcp_emulator, hcp_bucket, hcp_credentials, tmp_path) -> None:
    from rahcp_prefect.client import HCPClient

    src = tmp_path / "src"
    files = make_tree(src, {f"d{i % 4}/f{i:03d}.bin": content(i, 1000 + 97 * i) for i in range(FILES)})
    files.update(make_tree(src, {"d0/big.bin": os.urandom(13 * MIB)}))  # multipart, 3 parts
    db = tmp_path / "tracker.db"
    hcp_emulator.faults.add(plane="data", method="PUT", delay=0.04, count=None)
    run_and_kill("upload", hcp_emulator, hcp_bucket, src, db, after=30)
    first = done_keys(db)
    run_and_kill("upload", hcp_emulator, hcp_bucket, src, db, after=len(first) + 30)  # killed again
    before = done_keys(db)
    assert len(first) < len(before) < len(files)
    assert_done_means_identical(before, files, hcp_emulator.stored(hcp_bucket))
    hcp_emulator.faults.clear()

    async with HCPClient(
        **hcp_credentials, multipart_threshold=6 * MIB, multipart_chunk=5 * MIB, retry_base_delay=0.01
    ) as client:
        sent = record_calls(client, ["put_bytes", "put_file"])
        sent += record_calls(client, ["upload_multipart_digests"], owner=client.s3)
        with SqliteTracker(db, job="resume") as tracker:
            stats = await bulk_upload(BulkUploadConfig(client=client, bucket=hcp_bucket, source_dir=src, tracker=tracker))
            assert tracker.done_keys() == set(files) and tracker.error_entries() == []
    assert stats.errors == 0 and stats.ok + stats.skipped == len(files)
    assert not set(sent) & before, "a file marked done before the kill was sent again"
    assert len(sent) == stats.ok
    assert hcp_emulator.stored(hcp_bucket) == files


async def test_kill_mid_download_then_resume(hcp_emulator, hcp_bucket, hcp_credentials, tmp_path) -> None:
    from rahcp_prefect.client import HCPClient

    objects = {f"d{i % 4}/f{i:03d}.bin": content(i, 1000 + 97 * i) for i in range(FILES)}
    objects["d1/big.bin"] = os.urandom(3 * MIB)  # streamed (stream_threshold 1 MiB in the child)
    for key, body in objects.items():
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=body)
    dest = tmp_path / "dest"
    db = tmp_path / "tracker.db"
    hcp_emulator.faults.add(plane="data", method="GET", delay=0.04, count=None)
    run_and_kill("download", hcp_emulator, hcp_bucket, dest, db, after=40)
    before = done_keys(db)
    assert 0 < len(before) < len(objects)
    assert_done_means_identical(before, objects, local_files(dest))
    hcp_emulator.faults.clear()

    async with HCPClient(**hcp_credentials, retry_base_delay=0.01) as client:
        fetched = record_calls(client, ["get_bytes", "get_range_into"])
        with SqliteTracker(db, job="resume") as tracker:
            stats = await bulk_download(
                BulkDownloadConfig(client=client, bucket=hcp_bucket, dest_dir=dest, tracker=tracker, stream_threshold=MIB)
            )
            assert tracker.done_keys() == set(objects)
    assert stats.errors == 0 and stats.ok + stats.skipped == len(objects)
    assert not set(fetched) & before, "a file marked done before the kill was downloaded again"
    assert local_files(dest) == objects  # identical, and no temporary file left behind


async def test_kills_at_arbitrary_moments_then_resume(hcp_emulator, hcp_bucket, hcp_credentials, tmp_path) -> None:
    """SIGKILL after fixed delays (during start-up, the listing, transfers), then finish."""
    import asyncio

    from rahcp_prefect.client import HCPClient

    src = tmp_path / "src"
    files = make_tree(src, {f"d{i % 3}/f{i:03d}.bin": content(i, 500 + 31 * i) for i in range(200)})
    db = tmp_path / "tracker.db"
    hcp_emulator.faults.add(plane="data", method="PUT", delay=0.05, count=None)
    for delay in (0.2, 1.3, 1.5, 1.7):
        proc = start_child("upload", hcp_emulator, hcp_bucket, src, db)
        await asyncio.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if db.exists():
            assert_done_means_identical(done_keys(db), files, hcp_emulator.stored(hcp_bucket))
    hcp_emulator.faults.clear()
    before = done_keys(db) if db.exists() else set()
    async with HCPClient(**hcp_credentials, retry_base_delay=0.01) as client:
        sent = record_calls(client, ["put_bytes", "put_file"])
        with SqliteTracker(db, job="resume") as tracker:
            stats = await bulk_upload(BulkUploadConfig(client=client, bucket=hcp_bucket, source_dir=src, tracker=tracker))
    assert stats.errors == 0 and stats.ok + stats.skipped == len(files)
    assert not set(sent) & before
    assert hcp_emulator.stored(hcp_bucket) == files
