"""A download never writes outside its destination through a symbolic link (issue 30), through
the ``bulk-download`` flow and ``HCPBucket`` against the emulator: links already in the
destination (first level, deeper down, in place of a file), a link that replaces a folder while
the run is paused at a held GET (in the destination, and in the staging folder), and a
destination that is itself a link."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.blocks import HCPBucket
from rahcp_prefect.bucket import FolderTransferError
from rahcp_prefect.flows import BulkTransferFailed, bulk_download
from rahcp_prefect.job.folder import staging_dir_for
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks, emulator_credentials

from .helpers import data_requests, job_tracker, put_objects

pytestmark = pytest.mark.timeout(300)

OBJECTS = {
    "ok.txt": b"ok",
    "a/ok.txt": b"a ok",
    "a/deep/y.txt": b"deeper down",
    "sub/x.txt": b"first level",
    "f.txt": b"the object's bytes",
}
LINKED = {"p/sub/x.txt", "p/a/deep/y.txt"}
LINK_REASON = "is a symbolic link in the destination (downloads never follow one)"


def _files(root: Path) -> dict[str, bytes]:
    """Regular files below ``root``, never through a link (``os.walk`` follows none)."""
    found = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


async def _fails(state: Any) -> BulkTransferFailed:
    assert state.is_failed(), state
    with pytest.raises(BulkTransferFailed) as info:
        await state.result()
    return info.value


async def _swapped_mid_run(hcp_emulator: Any, params: dict[str, Any], swap: Callable[[], None]) -> BulkTransferFailed:
    """Run the download with the GET of ``p/sub/x.txt`` held, ``swap()`` while it waits, then
    let it go on; the run's failure."""
    held = hcp_emulator.faults.add("data", method="GET", path=r"/p/sub/x\.txt$", hold=True)
    run = asyncio.create_task(bulk_download(return_state=True, **params))
    try:
        assert await asyncio.to_thread(held.wait_held, 60), "the run reached the held GET"
        swap()
    finally:
        held.release(forward=True)
    return await _fails(await run)


def _outside(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "outside" / name
    folder.mkdir(parents=True)
    return folder


async def test_links_in_the_destination_are_never_followed_and_the_rest_lands(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    put_objects(hcp_emulator, hcp_bucket, "p/", OBJECTS)
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    first, deep, victim_dir = _outside(tmp_path, "first"), _outside(tmp_path, "deep"), _outside(tmp_path, "file")
    (dest / "sub").symlink_to(first)
    (dest / "a" / "deep").symlink_to(deep)
    victim = victim_dir / "victim.txt"
    victim.write_bytes(b"not yours")
    (dest / "f.txt").symlink_to(victim)  # the file itself is a link: replaced, never written through

    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "p/", **saved_blocks.params()}
    error = await _fails(await bulk_download(return_state=True, **params))
    text = str(error)
    assert "2 object(s) cannot be written" in text and "the other 3 file(s) are in place" in text, text
    result = error.result
    assert result["unwritable"] == 2 and set(result["unwritable_keys"]) == LINKED
    assert result["ok"] == 3, "the keys behind a link are never fetched"
    assert "'sub' " + LINK_REASON in result["unwritable_keys"]["p/sub/x.txt"]
    assert "'a/deep' " + LINK_REASON in result["unwritable_keys"]["p/a/deep/y.txt"]
    # nothing written outside; the links are still the links the user made
    assert _files(tmp_path / "outside") == {"file/victim.txt": b"not yours"}
    assert (dest / "sub").is_symlink() and (dest / "a" / "deep").is_symlink()
    # the rest landed, the linked file replaced by the object's bytes
    assert _files(dest) == {"ok.txt": b"ok", "a/ok.txt": b"a ok", "f.txt": b"the object's bytes"}
    assert not (dest / "f.txt").is_symlink()
    assert not staging_dir_for(dest).exists()

    # a rerun says the same, fetches no file and writes nothing outside either
    before = data_requests(hcp_emulator, "GET")
    again = await _fails(await bulk_download(return_state=True, **params))
    assert set(again.result["unwritable_keys"]) == LINKED and again.result["unchanged"] == 3
    assert data_requests(hcp_emulator, "GET") - before == 1, "the manifest looked for (none), no file"
    with job_tracker(saved_blocks.tracker_path, result["job"]) as tracker:
        errors = dict(tracker.error_details())
    assert errors["p/sub/x.txt"].startswith("unwritable: refused 'sub/x.txt': 'sub' " + LINK_REASON)
    assert _files(tmp_path / "outside") == {"file/victim.txt": b"not yours"}


async def test_a_link_that_replaces_a_destination_folder_mid_run_is_not_followed(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    put_objects(hcp_emulator, hcp_bucket, "p/", OBJECTS)
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)  # a real folder when the run starts
    (dest / "sub" / "old.txt").write_bytes(b"old")
    outside = _outside(tmp_path, "first")
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "p/", **saved_blocks.params()}

    def swap() -> None:  # the folder swapped for a link while the run waits
        (dest / "sub").rename(tmp_path / "moved-away")
        (dest / "sub").symlink_to(outside)

    error = await _swapped_mid_run(hcp_emulator, params, swap)
    assert set(error.result["unwritable_keys"]) == {"p/sub/x.txt"}
    assert "'sub' " + LINK_REASON in error.result["unwritable_keys"]["p/sub/x.txt"]
    assert _files(tmp_path / "outside") == {}
    assert _files(dest) == {"ok.txt": b"ok", "a/ok.txt": b"a ok", "a/deep/y.txt": b"deeper down",
                            "f.txt": b"the object's bytes"}
    assert _files(tmp_path / "moved-away") == {"old.txt": b"old"}


async def test_a_link_put_in_the_staging_folder_mid_run_is_not_followed(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """The staging folder is the run's own: a link made in it while the run waits at a held GET
    is refused when the file is written; the key is named, nothing lands outside, and the
    destination is untouched (a failed file keeps the run from moving anything)."""
    put_objects(hcp_emulator, hcp_bucket, "p/", OBJECTS)
    dest = tmp_path / "dest"
    staging = staging_dir_for(dest)
    outside = _outside(tmp_path, "first")
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "p/", **saved_blocks.params()}

    def swap() -> None:  # the file's folder is made once its bytes are here: a link there first
        shutil.rmtree(staging / "sub", ignore_errors=True)
        (staging / "sub").symlink_to(outside)

    error = await _swapped_mid_run(hcp_emulator, params, swap)
    assert "1 object(s) failed to download" in str(error) and "sub/x.txt" in str(error)
    assert "'sub' " + LINK_REASON in str(error)
    assert _files(tmp_path / "outside") == {}
    assert not dest.exists() or _files(dest) == {}, "a failed run moves nothing into the destination"
    with job_tracker(saved_blocks.tracker_path, error.result["job"]) as tracker:
        errors = dict(tracker.error_details())
    assert set(errors) == {"p/sub/x.txt"} and LINK_REASON in errors["p/sub/x.txt"]

    # once the link is gone, the next run fetches only that file and lands everything
    (staging / "sub").unlink()
    before = data_requests(hcp_emulator, "GET")
    result = await bulk_download(**params)
    assert result["ok"] == 1 and data_requests(hcp_emulator, "GET") - before == 2  # the file and the manifest
    assert _files(dest) == OBJECTS


async def test_a_destination_that_is_itself_a_link_works(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    put_objects(hcp_emulator, hcp_bucket, "p/", OBJECTS)
    real = tmp_path / "volumes" / "restore"
    real.mkdir(parents=True)
    dest = tmp_path / "restore-here"
    dest.symlink_to(real)
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "p/", **saved_blocks.params()}
    result = await bulk_download(**params)
    assert result["ok"] == len(OBJECTS) and result["moved"] == len(OBJECTS)
    assert _files(real) == OBJECTS and dest.is_symlink()
    assert not staging_dir_for(dest).exists()
    again = await bulk_download(**params)
    assert again["unchanged"] == len(OBJECTS) and again["ok"] == 0


async def test_hcpbucket_folder_download_never_follows_a_link(
    hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    put_objects(hcp_emulator, hcp_bucket, "tree/", OBJECTS)
    bucket = HCPBucket(bucket_name=hcp_bucket, credentials=emulator_credentials(hcp_credentials))
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    (dest / "sub").symlink_to(_outside(tmp_path, "first"))
    (dest / "a" / "deep").symlink_to(_outside(tmp_path, "deep"))
    with pytest.raises(FolderTransferError) as info:
        await bucket.adownload_folder_to_path("tree", dest)
    text = str(info.value)
    assert "2 file(s) failed" in text and "sub/x.txt" in text and "a/deep/y.txt" in text, text
    assert LINK_REASON in text
    assert _files(tmp_path / "outside") == {}
    assert _files(dest) == {"ok.txt": b"ok", "a/ok.txt": b"a ok", "f.txt": b"the object's bytes"}
    # the destination folder itself may be a link
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "outside" / "first")
    await bucket.adownload_folder_to_path("tree/a", linked)
    assert _files(tmp_path / "outside" / "first") == {"ok.txt": b"a ok", "deep/y.txt": b"deeper down"}
