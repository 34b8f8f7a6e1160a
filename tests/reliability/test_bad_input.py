"""Bad input: each case fails with an error that names the problem, or goes through, and
never loses a file. Flow-level cases run the real flows on the session's Prefect API.

Running as root (CI containers) no file mode makes a file unreadable, so those cases deny
reading by patching ``os.open``/``open``/``os.scandir`` for exactly that path; as another user
they use ``chmod 0``.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.job.manifest import MANIFEST_NAME
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPCredentials, HCPTracker
from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload as engine_upload
from rahcp_prefect.client import AuthenticationError, NotFoundError
from rahcp_prefect.flows import BulkTransferFailed, bulk_download, bulk_upload
from rahcp_prefect.flows.download import staging_dir_for
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.counter import LOGIN
from rahcp_prefect.testing.emulator import HCPEmulator
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import SqliteTracker, TrackerConnectionError

from .helpers import (
    api_requests,
    bucket_hashes,
    bucket_listing,
    data_requests,
    without_manifest,
    flow_artifacts,
    job_tracker,
    partial_files,
    put_objects,
    sha256,
    tree_hashes,
)

MIB = 1024 * 1024
ROOT = os.geteuid() == 0


def _deny(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path`` unreadable: ``chmod 0``, or (as root, who reads anything) EACCES from
    every way the code opens or lists it."""
    if not ROOT:
        path.chmod(0)
        return
    denied = str(path)

    def refuse(name: Any) -> None:
        if os.fspath(name) == denied:
            raise PermissionError(13, "Permission denied", denied)

    real_open, real_os_open, real_scandir = builtins.open, os.open, os.scandir
    monkeypatch.setattr(builtins, "open", lambda file, *a, **k: refuse(file) or real_open(file, *a, **k))
    monkeypatch.setattr(os, "open", lambda file, *a, **k: refuse(file) or real_os_open(file, *a, **k))
    monkeypatch.setattr(os, "scandir", lambda p=".": refuse(p) or real_scandir(p))


async def _fails(state: Any) -> BaseException:
    """The exception a failed flow run raised."""
    assert state.is_failed(), state
    with pytest.raises(BaseException) as info:
        await state.result()
    return info.value


# -- the source ----------------------------------------------------------------------------------


async def test_unreadable_source_folder_fails_before_any_transfer(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "locked"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    _deny(monkeypatch, source)
    state = await bulk_upload(source_dir=str(source), bucket=hcp_bucket, return_state=True, **saved_blocks.params())
    error = await _fails(state)
    assert isinstance(error, PermissionError)
    assert str(error) == f"source_dir is not readable: {source} (Permission denied)"
    assert data_requests(hcp_emulator) == 0 and bucket_listing(hcp_emulator, hcp_bucket) == []


async def test_one_unreadable_file_is_named_and_the_rest_go_through(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other files are transferred; the unreadable one is an error named in the run's
    exception and summary. The upload flow is all-or-nothing (staging, then commit), so the
    run then rolls back: the final prefix never holds a partial set, and nothing local moved."""
    source = tmp_path / "src"
    source.mkdir()
    for index in range(20):
        (source / f"f{index:02d}.txt").write_bytes(b"%d" % index)
    _deny(monkeypatch, source / "f07.txt")
    state = await bulk_upload(
        source_dir=str(source), bucket=hcp_bucket, prefix="final/", return_state=True, **saved_blocks.params()
    )
    error = await _fails(state)
    assert isinstance(error, BulkTransferFailed)
    assert "1 file(s) failed to upload (f07.txt: PermissionError:" in str(error)
    assert "Permission denied" in str(error) and "staging rolled back" in str(error)
    assert data_requests(hcp_emulator, "PUT") == 19, "every other file was transferred"
    artifacts = await flow_artifacts(state.state_details.flow_run_id)
    summary = str(next(a for a in artifacts if a.key and a.key.startswith("summary-")).data)
    assert "reached staging, deleted by the rollback" in summary and "`f07.txt`" in summary
    assert "transferred" not in summary, "nothing landed: no transferred count next to the rollback"
    assert bucket_listing(hcp_emulator, hcp_bucket) == [], "rolled back, final prefix untouched"
    assert len(list(source.iterdir())) == 20


async def test_file_changing_size_on_the_wire_is_deferred_and_sent_next_run(
    hcp_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """A file truncated, or appended to, while its bytes are being sent: detected, marked
    error, never recorded as done; the next run uploads what the file holds then."""
    source = tmp_path / "src"
    source.mkdir()
    shrinks, grows = source / "shrinks.bin", source / "grows.bin"
    shrinks.write_bytes(os.urandom(32 * MIB))
    grows.write_bytes(os.urandom(2 * MIB))
    (source / "stable.txt").write_bytes(b"stable")
    # Hold each PUT at the server for a moment; change the file while its request is in flight.
    rules = {
        path: hcp_emulator.faults.add("data", method="PUT", path=rf"/{path.name}$", delay=1.0, count=1)
        for path in (shrinks, grows)
    }

    def change_in_flight() -> None:
        for path, rule in rules.items():
            while rule.hits == 0:
                time.sleep(0.005)
            if path is shrinks:
                os.truncate(path, MIB)
            else:
                with path.open("ab") as handle:
                    handle.write(b"appended")

    changer = threading.Thread(target=change_in_flight, daemon=True)
    changer.start()
    errors: dict[str, BaseException] = {}
    with SqliteTracker(tmp_path / "t.db", job="j") as tracker:
        config = {"client": hcp_client, "bucket": hcp_bucket, "source_dir": source, "tracker": tracker,
                  "chunk_size": 64 * 1024, "workers": 3}
        stats = await engine_upload(BulkUploadConfig(**config, on_error=errors.__setitem__))
        changer.join(5)
        assert (stats.ok, stats.errors, stats.changed_during_run) == (1, 0, 2)
        assert sorted(stats.deferred) == ["grows.bin", "shrinks.bin"] and errors == {}
        assert tracker.done_keys() == {"stable.txt"} and tracker.error_entries() == []
        assert set(bucket_hashes(hcp_emulator, hcp_bucket)) == {"stable.txt"}, "no copy of a changed file kept"

        again = await engine_upload(BulkUploadConfig(**config))
        assert (again.ok, again.skipped, again.errors) == (2, 1, 0)
    assert bucket_hashes(hcp_emulator, hcp_bucket) == {
        name: sha256((source / name).read_bytes()) for name in ("shrinks.bin", "grows.bin", "stable.txt")
    }


ODD_NAMES = [
    "with space.txt", "ünïcødé/文件.txt", "question?.txt", "hash#tag.txt", "percent%20.txt",
    "plus+sign.txt", "a&b=c;d.txt", "emoji-📦.txt", "..dots..txt", "empty.bin", "zero/also-empty",
]


async def test_odd_names_and_empty_files_round_trip_through_both_flows(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    for name in ODD_NAMES:
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if "empty" in name else name.encode() * 3)
    expected = tree_hashes(source)
    up = await bulk_upload(source_dir=str(source), bucket=hcp_bucket, prefix="odd/", **saved_blocks.params())
    assert up["committed"] == len(ODD_NAMES)
    assert without_manifest(bucket_hashes(hcp_emulator, hcp_bucket)) == {f"odd/{name}": h for name, h in expected.items()}
    dest = tmp_path / "dest"
    down = await bulk_download(bucket=hcp_bucket, dest_dir=str(dest), prefix="odd/", **saved_blocks.params())
    assert down["moved"] == len(ODD_NAMES) + 2, "every file, and the job's manifest and times"
    downloaded = without_manifest(tree_hashes(dest))
    assert downloaded == expected


async def test_keys_with_dot_dot_are_refused_and_nothing_lands_outside(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    for key in ("data/ok.txt", "data/../escape.txt", "data/a/../../up.txt", "data/./here.txt"):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=b"x")
    box = tmp_path / "box"
    dest = box / "dest"
    state = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="data/", return_state=True, **saved_blocks.params()
    )
    error = await _fails(state)
    assert isinstance(error, BulkTransferFailed)
    # issue 23: refused keys are named (unwritable) and never hold back the others
    assert "3 object(s) cannot be written" in str(error)
    assert "data/a/../../up.txt: refused 'a/../../up.txt': empty, '.' or '..' path segment" in str(error)
    assert set(error.result["unwritable_keys"]) == {"data/../escape.txt", "data/a/../../up.txt", "data/./here.txt"}
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {w for w in written if not w.startswith("tracker.db")} == {"box/dest/ok.txt"}, "nothing lands outside"


async def test_symlinks_are_not_followed_unless_asked_and_loops_end(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source, outside = tmp_path / "src", tmp_path / "outside"
    (source / "real").mkdir(parents=True)
    outside.mkdir()
    (source / "real" / "f.txt").write_bytes(b"real")
    (outside / "g.txt").write_bytes(b"outside")
    (source / "dir-link").symlink_to(outside)
    (source / "file-link.txt").symlink_to(outside / "g.txt")
    (source / "real" / "loop").symlink_to(source)
    params = {"source_dir": str(source), "bucket": hcp_bucket, **saved_blocks.params()}

    result = await bulk_upload(prefix="plain/", **params)
    assert result["committed"] == 1
    assert list(without_manifest(dict(bucket_listing(hcp_emulator, hcp_bucket)))) == ["plain/real/f.txt"]

    started = time.monotonic()
    state = await bulk_upload(prefix="followed/", follow_symlinks=True, return_state=True, **params)
    assert time.monotonic() - started < 60, "a loop never hangs the walk"
    error = await _fails(state)
    assert "real/loop/: OSError: symlink loop: real/loop/ is an ancestor" in str(error)
    assert data_requests(hcp_emulator, "PUT") == 1 + 4 + 3, "each followed file sent once (and the first run's record and manifest, each with times), the loop never"


# -- the store, the credentials, the tracker ---------------------------------------------------


async def test_missing_bucket_is_named_before_any_transfer(
    saved_blocks: SavedBlocks, hcp_emulator: Any, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    upload = await bulk_upload(source_dir=str(source), bucket="no-such-bucket", return_state=True, **saved_blocks.params())
    error = await _fails(upload)
    assert isinstance(error, NotFoundError) and "no-such-bucket" in str(error)
    dest = tmp_path / "dest"
    download = await bulk_download(bucket="no-such-bucket", dest_dir=str(dest), return_state=True, **saved_blocks.params())
    error = await _fails(download)
    assert isinstance(error, NotFoundError) and "no-such-bucket" in str(error)
    assert data_requests(hcp_emulator) == 0 and not dest.exists()


async def test_wrong_credentials_fail_clearly_without_the_password(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    wrong = "Wr0ng-Passw0rd-For-Test"
    with HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint, users={"tester": "the-right-one"}) as strict:
        await HCPCredentials(
            endpoint=strict.base_url, username="tester", password=SecretStr(wrong), max_retries=0
        ).save(saved_blocks.credentials, overwrite=True)
        source = tmp_path / "src"
        source.mkdir()
        (source / "a.txt").write_bytes(b"a")
        state = await bulk_upload(source_dir=str(source), bucket=hcp_bucket, return_state=True, **saved_blocks.params())
        error = await _fails(state)
        assert isinstance(error, AuthenticationError) and str(error) == "401 Login failed: 401"
        assert wrong not in repr(error) and wrong not in (state.message or "")
        assert strict.request_counts == {LOGIN: 1}
    assert data_requests(hcp_emulator) == 0


async def test_wrong_tracker_dsn_fails_before_any_transfer_without_the_password(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    secret = "Tr4cker-Secret-Value"
    await HCPTracker(postgres_dsn=SecretStr(f"postgresql://rahcp:{secret}@127.0.0.1:1/nowhere")).save(
        saved_blocks.tracker, overwrite=True
    )
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    state = await bulk_upload(source_dir=str(source), bucket=hcp_bucket, return_state=True, **saved_blocks.params())
    error = await _fails(state)
    assert isinstance(error, TrackerConnectionError)
    assert "127.0.0.1" in str(error) and "port 1 failed: Connection refused" in str(error)
    assert secret not in repr(error) and secret not in (state.message or "")
    assert api_requests(hcp_emulator) == data_requests(hcp_emulator) == 0, "not even a login"


# -- the destination -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that really fills up (needs root, as in CI; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True
    ) if ROOT else None
    if done is None or done.returncode != 0:
        pytest.skip(f"a full disk needs a small tmpfs (mount as root): {done.stderr.strip() if done else 'not root'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_during_download_leaves_no_partial_file(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, small_disk: Path
) -> None:
    expected = put_objects(hcp_emulator, hcp_bucket, "data/", {f"f{index}.bin": os.urandom(200_000 + index) for index in range(6)})
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (free - 500_000))  # room for two of the six files
    dest = small_disk / "dest"
    staging = staging_dir_for(dest.resolve())
    params = {
        "bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/", **saved_blocks.params(),
        "settings_overrides": {"stream_threshold": 200_003},  # half in one piece, half streamed
    }
    state = await bulk_download(**params, return_state=True)
    error = await _fails(state)
    assert isinstance(error, BulkTransferFailed) and "No space left on device" in str(error)
    assert not dest.exists(), "the destination is untouched"
    assert partial_files(small_disk) == [], "no partial file left"
    landed = tree_hashes(staging)
    assert 1 <= len(landed) < 6 and all(expected[name] == h for name, h in landed.items())

    ballast.unlink()
    hcp_emulator.reset_counts()
    result = await bulk_download(**params)
    assert result["outcome"] == "complete" and result["ok"] == 6 - len(landed)
    assert data_requests(hcp_emulator, "GET") == 6 - len(landed) + 1, "the rest, and the manifest read once"
    assert tree_hashes(dest) == expected and not staging.exists()
    with job_tracker(saved_blocks.tracker_path, result["job"]) as tracker:
        assert tracker.summary() == {"pending": 0, "done": 6, "error": 0}
