"""Archive fidelity without a server (issue 23): the times tag file, finding deletions at the
source in two sorted streams, ``max_delete``, the mirror's safety nets, and the download's move
into place that names what it cannot place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rahcp_prefect.client.safe_paths import LinkRefusedError
from rahcp_prefect.job.deletions import DeletionWatch, delete_limit, mirror_hold_reason, parse_max_delete
from rahcp_prefect.job.manifest import MANIFEST_NAME, ManifestError
from rahcp_prefect.job.mtimes import MTIMES_NAME, mtimes_outside_manifest, parse_mtimes, plan_mtimes, render_mtimes
from rahcp_prefect.job.folder import promote_staging

STAGED = ".rahcp-staging/run/"


def test_the_times_tag_file_round_trips_odd_paths_and_names_bad_lines() -> None:
    times = {"a b.txt": 978_307_200_123_456_789, "x%\nnew": -1, "é/ü.txt": 0}
    data = render_mtimes(times)
    assert data.decode().splitlines()[0] == "978307200123456789  a b.txt"
    assert parse_mtimes(data) == times
    with pytest.raises(ManifestError, match="line 2 is not '<mtime_ns>  <path>'"):
        parse_mtimes(b"1  a\nsoon  b\n")
    with pytest.raises(ManifestError, match="lists 'a' twice"):
        parse_mtimes(b"1  a\r\n2  a\r\n")


def test_the_commit_lists_recorded_times_and_never_its_own_tag_files() -> None:
    records = [(STAGED + "a", 1, 5), (STAGED + "b", 1, None), (STAGED + MANIFEST_NAME, 1, 7), (STAGED + MTIMES_NAME, 1, 8)]
    assert plan_mtimes(records, STAGED) == {"a": 5}
    assert mtimes_outside_manifest({"a": 1, "gone": 2}, ["a"], "b/p/") == ["b/p/gone: in rahcp-mtimes.txt, not in the manifest"]


def _watch(recorded: list[str], scanned: list[str], **kwargs: object) -> DeletionWatch:
    watch = DeletionWatch(((STAGED + rel, 1, 1) for rel in recorded), STAGED, **kwargs)  # type: ignore[arg-type]
    assert [rel for rel, _size, _mtime in watch.watch((rel, 1, 1) for rel in scanned)] == scanned
    return watch


def test_deletions_are_the_records_the_scan_passed_over_in_key_order() -> None:
    recorded = ["a", "b/1", "b/2", "c", "d", MANIFEST_NAME, "z"]
    watch = _watch(recorded, ["a", "b/2", "bb", "d"])
    assert watch.deleted == ["b/1", "c", "z"] and watch.recorded == 6 and watch.seen == 4
    # the filters' view: a path the run excludes is not deleted, nor one under an unreadable folder
    only_b = _watch(recorded, ["a", "d"], counts=lambda rel: not rel.startswith("z"), unreadable=[("b", "EACCES")])
    assert only_b.deleted == ["c"]


def test_a_scan_that_did_not_end_reports_no_deletion() -> None:
    watch = DeletionWatch(((STAGED + rel, 1, 1) for rel in ["a", "b"]), STAGED)
    stream = watch.watch(iter([("b", 1, 1)]))
    next(stream)
    assert not watch.complete and watch.deleted == []
    assert mirror_hold_reason(watch, 0, None) == "the source was not read to its end"


@pytest.mark.parametrize(
    ("value", "parsed", "limit_of_40"),
    [(None, None, None), (0, 0, 0), (3, 3, 3), ("5", 5, 5), ("10%", "10%", 4), (" 2.5 % ", "2.5%", 1), ("100%", "100%", 40)],
)
def test_max_delete_is_a_count_or_a_percentage(value: object, parsed: object, limit_of_40: int | None) -> None:
    assert parse_max_delete(value) == parsed  # type: ignore[arg-type]
    assert delete_limit(parsed, 40) == limit_of_40  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, "many", "101%", "-5%", True, 2.5])
def test_a_bad_max_delete_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match=r"max_delete must be a count >= 0 or a percentage like '5%', got"):
        parse_max_delete(bad)  # type: ignore[arg-type]


def test_the_mirror_is_held_back_by_each_safety_net() -> None:
    empty = _watch(["f1", "f2"], [])
    assert mirror_hold_reason(empty, 0, None) == "the source is empty (an unmounted share looks like that)"
    three = _watch([f"f{i}" for i in range(10)], [f"f{i}" for i in range(3, 10)])
    assert mirror_hold_reason(three, 1, None) == "1 error(s) in this run"
    assert "3 deletion(s) exceed max_delete=2 (2 of 10 file(s))" == mirror_hold_reason(three, 0, 2)
    assert "exceed max_delete='20%'" in str(mirror_hold_reason(three, 0, "20%"))
    assert mirror_hold_reason(three, 0, 3) is None and mirror_hold_reason(three, 0, "30%") is None


def test_the_move_into_place_names_what_it_cannot_place_and_moves_the_rest(tmp_path: Path) -> None:
    staging, dest = tmp_path / ".dest.rahcp-staging", tmp_path / "dest"
    for rel in ("ok.txt", "clash/inner.txt", "sub/x.txt", "sub/.rahcp-part.y"):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(rel.encode())
    (staging / "empty").mkdir()
    os.utime(staging / "ok.txt", ns=(10**18, 10**18))
    dest.mkdir()
    (dest / "clash").write_bytes(b"a file where staging has a folder")
    done = promote_staging(staging, dest)
    assert done.moved == 2 and [path for path, _why in done.unplaced] == ["clash/inner.txt"], "each file is named"
    assert (dest / "ok.txt").stat().st_mtime_ns == 10**18, "the move keeps the restored time"
    assert (dest / "empty").is_dir() and not (dest / "sub" / ".rahcp-part.y").exists() and not staging.exists()


def test_the_move_into_place_never_goes_through_a_link(tmp_path: Path) -> None:
    """A link in the destination where a folder goes (first level, deeper) is refused, each file
    below it named; a link in place of a file is replaced, never written through; a link in the
    staging folder is never moved."""
    staging, dest, outside = tmp_path / ".dest.rahcp-staging", tmp_path / "dest", tmp_path / "outside"
    for rel in ("ok.txt", "f.txt", "sub/x.txt", "sub/more/y.txt", "a/deep/z.txt", "a/ok.txt"):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(rel.encode())
    (staging / "planted").symlink_to(outside / "victim.txt")
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"victim")
    (dest / "a").mkdir(parents=True)
    (dest / "sub").symlink_to(outside)
    (dest / "a" / "deep").symlink_to(outside)
    (dest / "f.txt").symlink_to(outside / "victim.txt")
    done = promote_staging(staging, dest)
    assert done.moved == 3
    unplaced = dict(done.unplaced)
    assert set(unplaced) == {"sub/x.txt", "sub/more/y.txt", "a/deep/z.txt", "planted"}
    assert "'sub' is a symbolic link in the destination" in unplaced["sub/more/y.txt"]
    assert "'a/deep' is a symbolic link in the destination" in unplaced["a/deep/z.txt"]
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"] and (outside / "victim.txt").read_bytes() == b"victim"
    assert (dest / "f.txt").read_bytes() == b"f.txt" and not (dest / "f.txt").is_symlink()
    assert not (dest / "planted").exists() and not staging.exists()


def test_a_staging_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real, dest = tmp_path / "elsewhere", tmp_path / "dest"
    (real / "x.txt").parent.mkdir(parents=True)
    (real / "x.txt").write_bytes(b"x")
    (tmp_path / ".dest.rahcp-staging").symlink_to(real)
    with pytest.raises(LinkRefusedError):
        promote_staging(tmp_path / ".dest.rahcp-staging", dest)
    assert (real / "x.txt").exists() and not dest.exists()
