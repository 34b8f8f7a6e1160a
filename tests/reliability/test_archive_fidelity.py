"""Archive fidelity (issue 23), through the flows against the emulator: files' times round-trip,
deletions at the source are reported (and mirrored only when asked, behind safety nets), a
prefix another tool wrote downloads every object a filesystem can hold, and job names that
differ only in non-ASCII letters keep their own artifacts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.flows import BulkTransferFailed, bulk_download, bulk_upload
from rahcp_prefect.flows.artifacts import summary_key
from rahcp_prefect.job.manifest import MANIFEST_NAME
from rahcp_prefect.job.mtimes import MTIMES_NAME, parse_mtimes
from rahcp_prefect.job.records import is_record_key
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks

from .helpers import bucket_listing, data_requests, flow_artifacts, job_tracker, put_objects

pytestmark = pytest.mark.timeout(300)

#: 2001-01-01 .. 2019: provenance an archive keeps (with sub-second parts where the filesystem has them).
OLD_TIMES = [978_307_200_123_456_789 + n * 57_000_000_000_000_001 for n in range(10)]


async def _fails(state: Any) -> BaseException:
    assert state.is_failed(), state
    with pytest.raises(BaseException) as info:
        await state.result()
    return info.value


def _old_tree(root: Path) -> dict[str, int]:
    """10 files (two in a subfolder) with modification times in 2001-2019; their times as kept."""
    times: dict[str, int] = {}
    for n, mtime in enumerate(OLD_TIMES):
        rel = f"sub/f{n}.txt" if n < 2 else f"f{n}.txt"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {n}".encode())
        os.utime(path, ns=(mtime, mtime))
        times[rel] = path.stat().st_mtime_ns  # what this filesystem kept
    return times


async def test_modification_times_round_trip_and_a_rerun_downloads_nothing(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    kept = _old_tree(source)
    params = saved_blocks.params()
    up = await bulk_upload(source_dir=str(source), bucket=hcp_bucket, prefix="scans/", **params)
    assert up["committed"] == 10
    tag = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="scans/" + MTIMES_NAME)["Body"].read()
    assert parse_mtimes(tag) == kept, "the archive holds every file's time, in ns"

    down = await bulk_download(bucket=hcp_bucket, dest_dir=str(dest), prefix="scans/", **params)
    assert down["failed"] == 0
    for rel, mtime in kept.items():
        got = (dest / rel).stat().st_mtime_ns
        assert got // 10**9 == mtime // 10**9, f"{rel}: equal to the second"
        assert got == mtime, f"{rel}: to the ns this filesystem keeps"

    before = data_requests(hcp_emulator, "GET")
    again = await bulk_download(bucket=hcp_bucket, dest_dir=str(dest), prefix="scans/", **params)
    assert again["new"] == 0 and again["changed"] == 0 and again["unchanged"] == 12  # 10 + 2 tag files
    assert data_requests(hcp_emulator, "GET") - before == 2, "a rerun reads the manifest and the times, no file"
    assert all((dest / rel).stat().st_mtime_ns == mtime for rel, mtime in kept.items())


FOREIGN = {
    "a": b"file named a",
    "a/b.txt": b"under a folder named a",
    "x//y.txt": b"empty segment",
    "dir/": b"",
    "one.txt": b"1",
    "two/2.txt": b"2",
    "three.bin": b"3" * 3000,
    "four/deep/4.txt": b"4",
}
#: What of ``FOREIGN`` lands as files: the first of a file and a folder of one name, and the four ordinary files.
LANDS = {k: v for k, v in FOREIGN.items() if k in ("a", "one.txt", "two/2.txt", "three.bin", "four/deep/4.txt")}


async def test_a_prefix_another_tool_wrote_lands_every_file_it_can_and_names_the_rest(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """Objects written straight into S3 (as another tool would, past the API's rules): a file
    and a folder of one name, an empty segment, a folder marker, a name longer than the
    filesystem allows, a key climbing out with ``..``, and four ordinary files."""
    foreign = {**FOREIGN, "long/" + "n" * 300 + ".txt": b"too long", "up/../../escape.txt": b"never"}
    put_objects(hcp_emulator, hcp_bucket, "other/", foreign)
    box = tmp_path / "box"
    dest = box / "dest"
    state = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="other/", return_state=True, **saved_blocks.params()
    )
    error = await _fails(state)
    assert isinstance(error, BulkTransferFailed)
    text = str(error)
    assert "4 object(s) cannot be written" in text and "the other 5 file(s) are in place" in text
    for named in ("other/a/b.txt", "up/../../escape.txt", "n" * 300):
        assert named in text, named
    assert "and 1 more" in text  # x//y.txt: the summary and the result name them all
    assert "'a' is a file in this prefix" in text and "empty, '.' or '..' path segment" in text
    result = error.result
    assert "a path segment of 304 bytes" in result["unwritable_keys"]["other/long/" + "n" * 300 + ".txt"]
    assert result["unwritable"] == 4 and result["ok"] == 5
    assert set(result["unwritable_keys"]) == {
        "other/a/b.txt", "other/x//y.txt", "other/long/" + "n" * 300 + ".txt", "other/up/../../escape.txt"
    }
    # every representable object landed: the first of a file and a folder of one name, the
    # four ordinary files, and the folder marker as an empty folder
    files = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert files == LANDS
    assert (dest / "dir").is_dir() and list((dest / "dir").iterdir()) == []
    outside = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p for p in outside if not p.startswith("tracker.db")} == {f"box/dest/{name}" for name in files}
    # the summary names them, and the tracker lists them with their reason (rahcp errors)
    artifacts = await flow_artifacts(state.state_details.flow_run_id)
    summary = next(str(a.data) for a in artifacts if a.key and a.key.startswith("summary-"))
    assert "4 objects cannot be written here (unwritable)" in summary
    for named in ("`a/b.txt`", "`x//y.txt`", "`up/../../escape.txt`"):
        assert named in summary, named
    with job_tracker(saved_blocks.tracker_path, result["job"]) as tracker:
        errors = dict(tracker.error_details())
    assert errors["other/x//y.txt"].startswith("unwritable: refused")

    # a rerun fetches nothing again and says the same
    before = data_requests(hcp_emulator, "GET")
    again = await _fails(await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="other/", return_state=True, **saved_blocks.params()
    ))
    assert isinstance(again, BulkTransferFailed) and again.result["unwritable"] == 4
    assert data_requests(hcp_emulator, "GET") - before == 1, "the manifest looked for (none), no file"


async def test_a_cooperative_download_of_that_prefix_lands_the_same_files_and_names_the_rest(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, postgres_dsn: str
) -> None:
    """Cooperative runs register only the keys a filesystem can hold: the unwritable ones are
    never claimed (so they fail no batch and hold back no file), and the run that moves the
    files into place names them."""
    put_objects(hcp_emulator, hcp_bucket, "other/", FOREIGN)
    await HCPTracker(postgres_dsn=SecretStr(postgres_dsn)).save(saved_blocks.tracker, overwrite=True)
    dest = tmp_path / "dest"
    job = f"foreign-{hcp_bucket}"
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "other/", "job": job, "cooperative": True,
              **saved_blocks.params()}
    error = await _fails(await bulk_download(return_state=True, **params))
    assert isinstance(error, BulkTransferFailed)
    assert "2 object(s) cannot be written" in str(error) and "the other 5 file(s) are in place" in str(error)
    assert set(error.result["unwritable_keys"]) == {"other/a/b.txt", "other/x//y.txt"}
    files = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert files == LANDS
    assert (dest / "dir").is_dir()
    with job_tracker(postgres_dsn, job) as tracker:
        assert tracker.summary()["error"] == 0, "no unwritable key was claimed, so none failed a batch"
        assert "other/a/b.txt" not in set(tracker.done_keys())


async def test_job_names_that_differ_only_in_non_ascii_letters_keep_their_own_artifacts(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    keys = {}
    for job in ("scans_ÅÄÖ", "scans_ÄÅÖ", "scans"):
        state = await bulk_upload(
            source_dir=str(source), bucket=hcp_bucket, prefix=f"{len(keys)}/", job=job, return_state=True,
            **saved_blocks.params(),
        )
        assert state.is_completed()
        artifacts = await flow_artifacts(state.state_details.flow_run_id)
        [summary] = [a.key for a in artifacts if a.key and a.key.startswith("summary-")]
        assert summary == summary_key(job)
        keys[job] = summary
    assert keys["scans_ÅÄÖ"].startswith("summary-scans-aao-") and keys["scans"] == "summary-scans"
    assert len(set(keys.values())) == 3, keys
    assert [key for key, _size in bucket_listing(hcp_emulator, hcp_bucket, "0/") if not is_record_key("0/", key)] == ["0/a.txt"]


def _tree(root: Path, count: int) -> None:
    for n in range(count):
        (root / f"f{n:02d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"f{n:02d}.txt").write_bytes(f"file {n}".encode())


def _final(emulator: Any, bucket: str, prefix: str) -> set[str]:
    return {key[len(prefix):] for key, _size in bucket_listing(emulator, bucket, prefix) if not is_record_key(prefix, key)}


def _manifest_paths(emulator: Any, bucket: str, prefix: str) -> set[str]:
    from rahcp_prefect.job.manifest import parse_manifest

    return set(parse_manifest(emulator.s3.get_object(Bucket=bucket, Key=prefix + MANIFEST_NAME)["Body"].read()))


async def _committed_then_deleted(
    source: Path, count: int, gone: list[str], bucket: str, prefix: str, job: str, saved_blocks: SavedBlocks
) -> dict[str, Any]:
    """A job of ``count`` files committed (nothing deleted at the source yet), then ``gone``
    deleted at the source; returns the job's upload parameters."""
    _tree(source, count)
    params = dict(source_dir=str(source), bucket=bucket, prefix=prefix, job=job, **saved_blocks.params())
    first = await bulk_upload(**params)
    assert first["committed"] == count and first["deleted_at_source"] == 0
    for name in gone:
        (source / name).unlink()
    return params


async def test_deletions_at_the_source_are_counted_named_and_never_acted_on_by_default(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    gone = ["f03.txt", "f14.txt", "f29.txt"]
    params = await _committed_then_deleted(source, 30, gone, hcp_bucket, "arch/", "deletions", saved_blocks)
    state = await bulk_upload(**params, return_state=True)
    result = await state.result()
    assert result["deleted_at_source"] == 3 and result["deleted_at_source_keys"] == gone
    assert _final(hcp_emulator, hcp_bucket, "arch/") == {f"f{n:02d}.txt" for n in range(30)}, "objects stay"
    assert _manifest_paths(hcp_emulator, hcp_bucket, "arch/") >= set(gone), "manifest lines stay"
    artifacts = await flow_artifacts(state.state_details.flow_run_id)
    summary = next(str(a.data) for a in artifacts if a.key == summary_key("deletions"))
    head = summary.split("\n")[:6]
    assert any("3 files deleted at the source since the job sent them; their objects and manifest lines are kept" in line
               and "`f03.txt`, `f14.txt`, `f29.txt`" in line for line in head), head
    [status] = [a for a in artifacts if a.key == "job-status-deletions"]
    assert status.data and '"deleted_at_source": 3' in str(status.data).replace("'", '"')


async def test_mirror_deletions_removes_them_only_behind_its_safety_nets(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    gone = ["f01.txt", "f02.txt", "f03.txt"]
    params = await _committed_then_deleted(source, 10, gone, hcp_bucket, "m/", "mirror", saved_blocks)
    everything = {f"f{n:02d}.txt" for n in range(10)}

    dry = await bulk_upload(**params, dry_run=True, mirror_deletions=True)
    assert dry["deleted_at_source"] == 3 and dry["would_delete_keys"] == gone
    assert _final(hcp_emulator, hcp_bucket, "m/") == everything, "a dry run deletes nothing"

    for limit in (2, "20%"):  # 3 > 2; 20% of 10 files is 2
        held = await bulk_upload(**params, mirror_deletions=True, max_delete=limit)
        assert held["mirror_deleted"] == 0 and "exceed max_delete" in held["mirror_held_back"], limit
        assert _final(hcp_emulator, hcp_bucket, "m/") == everything

    # an empty source (an unmounted share) deletes nothing
    aside = tmp_path / "aside"
    source.rename(aside)
    source.mkdir()
    empty = await bulk_upload(**params, mirror_deletions=True)
    assert empty["deleted_at_source"] == 10 and "the source is empty" in empty["mirror_held_back"]
    assert _final(hcp_emulator, hcp_bucket, "m/") == everything
    source.rmdir()
    aside.rename(source)

    # any error: the run fails before anything is deleted
    (source / "new.txt").write_bytes(b"new")
    hcp_emulator.faults.add("data", method="PUT", path="new.txt", status=403, count=None)
    failed = await bulk_upload(**params, mirror_deletions=True, return_state=True)
    assert isinstance(await _fails(failed), BulkTransferFailed)
    hcp_emulator.faults.clear()
    assert _final(hcp_emulator, hcp_bucket, "m/") == everything
    (source / "new.txt").unlink()

    # a retained object (403 on delete) is reported, not failed; the others go
    hcp_emulator.faults.add("api", method="DELETE", path="f02", status=403, count=None)
    state = await bulk_upload(**params, mirror_deletions=True, max_delete=3, return_state=True)
    hcp_emulator.faults.clear()
    assert state.is_completed(), state
    done = await state.result()
    assert done["mirror_deleted"] == 2 and done["mirror_retained"] == 1 and done["mirror_retained_keys"] == ["f02.txt"]
    assert "mirror_held_back" not in done
    assert _final(hcp_emulator, hcp_bucket, "m/") == everything - {"f01.txt", "f03.txt"}
    assert _manifest_paths(hcp_emulator, hcp_bucket, "m/") == everything - {"f01.txt", "f03.txt"}
    artifacts = await flow_artifacts(state.state_details.flow_run_id)
    summary = next(str(a.data) for a in artifacts if a.key == summary_key("mirror"))
    assert "Retained by the namespace, not deleted: `f02.txt`" in summary
    with job_tracker(saved_blocks.tracker_path, "mirror") as tracker:
        assert "m/f01.txt" not in {key[-len("m/f01.txt"):] for key in tracker.done_keys()}

    again = await bulk_upload(**params)
    assert again["deleted_at_source"] == 1 and again["deleted_at_source_keys"] == ["f02.txt"], "only the retained one"


async def test_mirror_deletions_is_refused_for_a_cooperative_run(
    saved_blocks: SavedBlocks, hcp_bucket: str, tmp_path: Path
) -> None:
    """A cooperative run sees only its own share of the source: it never mirrors deletions."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    with pytest.raises(ValueError, match="mirror_deletions is for single-mode runs"):
        await bulk_upload(
            source_dir=str(source), bucket=hcp_bucket, prefix="c/", cooperative=True, mirror_deletions=True,
            **saved_blocks.params(),
        )
    with pytest.raises(ValueError, match="max_delete must be a count"):
        await bulk_upload(
            source_dir=str(source), bucket=hcp_bucket, prefix="c/", mirror_deletions=True, max_delete="lots",
            **saved_blocks.params(),
        )
