"""bulk_upload against the emulator (real moto S3 behind presigned URLs): every config field."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.bulk import (
    BulkUploadConfig,
    TransferStats,
    bulk_upload,
)
from rahcp_prefect.client import HCPClient
from rahcp_prefect.testing.counter import (
    DATA_PUT as PUT,
    HEAD_OBJECT as HEAD,
    LIST_OBJECTS as LIST,
    PART_PUT as PART,
    PRESIGN as PRESIGN_ONE,
    PRESIGN_BULK,
)
from rahcp_prefect.tracker import TransferStatus

from .conftest import content, make_tree


def cfg(client: Any, bucket: str, src: Path, tracker: Any, **kw: Any) -> BulkUploadConfig:
    return BulkUploadConfig(client=client, bucket=bucket, source_dir=src, tracker=tracker, **kw)


async def test_upload_tree_keys_stats_and_tracker(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"d{i % 3}/sub dir/f{i}.bin": content(i, 10 + i) for i in range(30)})
    make_tree(src, {"top.txt": b"top", "empty": b""})
    files.update({"top.txt": b"top", "empty": b""})
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="2025/"))
    assert isinstance(stats, TransferStats)
    assert (stats.ok, stats.skipped, stats.errors, stats.done) == (32, 0, 0, 32)
    assert stats.bytes == sum(len(v) for v in files.values())
    assert stats.elapsed > 0 and stats.mb_per_sec > 0 and stats.files_per_sec > 0
    # keys are prefix + relative path with "/" separators
    assert hcp_emulator.stored(hcp_bucket) == {f"2025/{k}": v for k, v in files.items()}
    assert tracker.done_keys() == {f"2025/{k}" for k in files}
    assert tracker.summary()["done"] == 32
    # a rerun skips everything: the tracker holds it as done
    hcp_emulator.reset_counts()
    again = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="2025/"))
    assert (again.ok, again.skipped, again.errors) == (0, 32, 0)
    assert hcp_emulator.request_counts[PUT] == 0


async def test_presign_batches_and_bounded_pipeline(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {f"f{i:03d}": content(i, 50) for i in range(120)})
    hcp_emulator.faults.add(plane="data", method="PUT", delay=0.02, count=None)
    presigns_at_first_file: list[int] = []

    def progress(s: TransferStats) -> None:
        if s.ok and not presigns_at_first_file:
            presigns_at_first_file.append(hcp_emulator.request_counts[PRESIGN_BULK])

    stats = await bulk_upload(
        cfg(hcp_client, hcp_bucket, src, tracker, workers=2, queue_depth=2, presign_batch_size=10,
            on_progress=progress, progress_interval=0)
    )
    assert stats.ok == 120
    counts = hcp_emulator.request_counts
    assert counts[PRESIGN_BULK] == 12  # one API call per presign_batch_size keys
    assert counts[PRESIGN_ONE] == 0
    assert counts[LIST] == 1 and counts[HEAD] == 0  # skip_existing: one list page, no HEAD per file
    # producer never ran far ahead: queue of 4 + 2 in the workers + one batch signing ahead
    assert presigns_at_first_file and presigns_at_first_file[0] <= 3


async def test_skip_existing_uses_listing(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"f{i}": content(i, 20) for i in range(10)})
    s3 = hcp_emulator.s3
    s3.put_object(Bucket=hcp_bucket, Key="p/f0", Body=b"y" * 20)  # same size: skipped
    s3.put_object(Bucket=hcp_bucket, Key="p/f1", Body=b"short")  # other size: uploaded
    s3.put_object(Bucket=hcp_bucket, Key="p/zz-other", Body=b"1")
    hcp_emulator.reset_counts()
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="p/"))
    assert (stats.ok, stats.skipped) == (9, 1)
    assert hcp_emulator.request_counts[HEAD] == 0 and hcp_emulator.request_counts[LIST] == 1
    assert "p/f0" in tracker.done_keys()  # a skip seen on the remote is recorded as done
    remote = hcp_emulator.stored(hcp_bucket, "p/")
    assert remote["p/f0"] == b"y" * 20 and remote["p/f1"] == files["f1"]
    # skip_existing=False sends everything again (fresh tracker job)
    from rahcp_prefect.tracker import SqliteTracker

    with SqliteTracker(tmp_path / "t2.db", job="other") as t2:
        stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, t2, prefix="p/", skip_existing=False))
    assert (stats.ok, stats.skipped) == (10, 0)
    assert hcp_emulator.stored(hcp_bucket, "p/")["p/f0"] == files["f0"]


async def test_include_exclude(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.tif": b"1", "b.jpg": b"2", "x/c.tif": b"3", "x/c_thumb.tif": b"4", "raw/d.bin": b"5"})
    stats = await bulk_upload(
        cfg(hcp_client, hcp_bucket, src, tracker, include=["*.tif", "raw/*"], exclude=["*_thumb.*"])
    )
    assert stats.ok == 3
    assert set(hcp_emulator.stored(hcp_bucket)) == {"a.tif", "x/c.tif", "raw/d.bin"}


async def test_retry_errors_runs_only_error_keys(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"f{i}": content(i, 30) for i in range(8)})
    hcp_emulator.faults.add(plane="data", method="PUT", path=r"/f[25]$", status=400, count=None)
    failed: list[tuple[str, BaseException]] = []
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, on_error=lambda k, e: failed.append((k, e))))
    assert (stats.ok, stats.errors) == (6, 2)  # one failing file never stops the others
    assert sorted(k for k, _ in failed) == ["f2", "f5"]
    assert sorted(k for k, _ in tracker.error_entries()) == ["f2", "f5"]
    assert all("f2" in m or "f5" in m for _, m in tracker.error_details())
    hcp_emulator.faults.clear()
    hcp_emulator.reset_counts()
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, retry_errors=True))
    assert (stats.ok, stats.errors, stats.skipped) == (2, 0, 0)
    assert hcp_emulator.request_counts[PUT] == 2
    assert tracker.error_entries() == []
    assert hcp_emulator.stored(hcp_bucket) == files


async def test_validate_file_before_upload(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"good1": b"ok", "bad": b"nope", "good2": b"ok"})

    def validate(path: Path) -> None:
        if path.read_bytes() != b"ok":
            raise ValueError(f"{path.name} is corrupt")

    errors: list[str] = []
    stats = await bulk_upload(
        cfg(hcp_client, hcp_bucket, src, tracker, validate_file=validate, on_error=lambda k, e: errors.append(str(e)))
    )
    assert (stats.ok, stats.errors) == (2, 1)
    assert errors == ["bad is corrupt"]
    assert set(hcp_emulator.stored(hcp_bucket)) == {"good1", "good2"}
    assert tracker.unvalidated_keys() == []  # done keys were validated

    async def async_validate(path: Path) -> None:
        raise RuntimeError("async says no")

    src2 = tmp_path / "src2"
    make_tree(src2, {"x": b"1"})
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src2, tracker, prefix="2/", validate_file=async_validate))
    assert stats.errors == 1


async def test_verify_upload_heads_each_object(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {f"f{i}": content(i, 40) for i in range(5)})
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, verify_upload=True))
    assert stats.ok == 5
    assert hcp_emulator.request_counts[HEAD] == 5
    assert tracker.unverified_keys() == []
    # without verify_upload the keys are recorded as done but unverified
    src2 = tmp_path / "src2"
    make_tree(src2, {"g": b"1"})
    await bulk_upload(cfg(hcp_client, hcp_bucket, src2, tracker, prefix="u/"))
    assert [k for k, _, _ in tracker.unverified_keys()] == ["u/g"]
    # a failing HEAD fails that file only
    src3 = tmp_path / "src3"
    make_tree(src3, {"h1": b"1", "h2": b"2"})
    hcp_emulator.faults.add(plane="api", method="HEAD", path="h1", status=404, count=None)
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src3, tracker, prefix="v/", verify_upload=True))
    assert (stats.ok, stats.errors) == (1, 1)


async def test_progress_throttled_and_final(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {f"f{i}": b"x" for i in range(20)})
    calls: list[TransferStats] = []
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, on_progress=calls.append, progress_interval=3600))
    assert len(calls) == 1 and calls[0].ok == 20 == stats.ok  # only the final call
    calls.clear()
    stats = await bulk_upload(
        cfg(hcp_client, hcp_bucket, src, tracker, prefix="b/", on_progress=calls.append, progress_interval=0)
    )
    assert len(calls) == 21 and calls[-1].ok == 20  # every file, then once at the end
    assert [c.done for c in calls[:-1]] == list(range(1, 21))

    def broken(s: TransferStats) -> None:
        raise RuntimeError("callback bug")

    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="c/", on_progress=broken, progress_interval=0))
    assert stats.ok == 20  # a failing callback never stops the transfer


async def test_chunked_and_multipart(hcp_emulator, hcp_bucket, hcp_credentials, tracker, tmp_path) -> None:
    mib = 1024 * 1024
    src = tmp_path / "src"
    big = os.urandom(11 * mib)
    files = make_tree(src, {"small": b"s" * 1000, "medium": os.urandom(300_000), "big": big})
    async with HCPClient(
        **hcp_credentials, multipart_threshold=6 * mib, multipart_chunk=5 * mib, retry_base_delay=0.01
    ) as client:
        calls: list[str] = []
        real_put_file = client.data.put_file

        async def put_file(url, path, size, **kw):
            calls.append(f"{Path(path).name}:{kw.get('chunk_size')}")
            return await real_put_file(url, path, size, **kw)

        client.data.put_file = put_file  # type: ignore[method-assign]
        stats = await bulk_upload(cfg(client, hcp_bucket, src, tracker, chunk_size=64 * 1024))
    assert (stats.ok, stats.errors) == (3, 0)
    assert calls == ["medium:65536"]  # above chunk_size: streamed in chunk_size pieces
    assert hcp_emulator.request_counts[PART] == 3  # 11 MiB in 5 MiB parts
    assert hcp_emulator.request_counts[PRESIGN_BULK] == 1
    assert hcp_emulator.stored(hcp_bucket) == files


async def test_expired_url_presigned_again_once(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"f{i}": content(i, 25) for i in range(6)})
    hcp_emulator.faults.add(plane="data", method="PUT", path="/f3$", status=403, count=1)
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker))
    assert (stats.ok, stats.errors, stats.retries) == (6, 0, 1)
    assert hcp_emulator.request_counts[PRESIGN_ONE] == 1
    assert hcp_emulator.stored(hcp_bucket) == files
    # a second 403 on the fresh URL is an error for that file only
    src2 = tmp_path / "src2"
    make_tree(src2, {"a": b"1", "b": b"2"})
    hcp_emulator.faults.add(plane="data", method="PUT", path="/x/a$", status=403, count=None)
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src2, tracker, prefix="x/"))
    assert (stats.ok, stats.errors) == (1, 1)


async def test_file_changed_after_scan_is_deferred(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"grows": b"12345", "shrinks": os.urandom(2_000_000), "stable": b"ok", "gone": b"bye"})

    def mutate(path: Path) -> None:  # runs after the scan, just before the upload
        if path.name == "grows":
            path.write_bytes(b"1234567")
        elif path.name == "shrinks":
            path.write_bytes(b"tiny")
        elif path.name == "gone":
            path.unlink()

    errors: dict[str, BaseException] = {}
    stats = await bulk_upload(
        cfg(hcp_client, hcp_bucket, src, tracker, validate_file=mutate, on_error=errors.__setitem__)
    )
    assert (stats.ok, stats.errors, stats.changed_during_run, stats.vanished) == (1, 0, 2, 1), errors
    assert sorted(stats.deferred) == ["gone", "grows", "shrinks"] and stats.done == 4
    assert set(hcp_emulator.stored(hcp_bucket)) == {"stable"}
    assert set(tracker.entries()) == {"stable"}, "a deferred file is not recorded"
    # the next run picks the files up again with their new sizes
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker))
    assert (stats.ok, stats.skipped) == (2, 1)
    assert hcp_emulator.stored(hcp_bucket)["grows"] == b"1234567"


async def test_unreadable_file_fails_alone(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a": b"1", "b": b"2", "c": b"3"})
    if os.geteuid() != 0:
        (src / "b").chmod(0)
        entries = None
    else:  # root reads anything: a directory given as a file is unreadable too
        (src / "dir").mkdir()
        entries = [("a", 1), ("b", 1), ("c", 1), ("dir", 0)]
    errors: list[str] = []
    stats = await bulk_upload(
        cfg(hcp_client, hcp_bucket, src, tracker, entries=entries, on_error=lambda k, e: errors.append(k))
    )
    assert stats.errors == 1 and stats.ok >= 2
    assert [k for k, _ in tracker.error_entries()] == errors


async def test_source_dir_checked_before_anything(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    hcp_emulator.reset_counts()
    with pytest.raises(FileNotFoundError, match="missing-dir"):
        await bulk_upload(cfg(hcp_client, hcp_bucket, tmp_path / "missing-dir", tracker))
    (tmp_path / "plain-file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="plain-file"):
        await bulk_upload(cfg(hcp_client, hcp_bucket, tmp_path / "plain-file", tracker))
    assert sum(hcp_emulator.request_counts.values()) == 0


async def test_entries_work_list(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"d/f{i}": content(i, 15) for i in range(10)})
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="p/d/f4", Body=files["d/f4"])
    hcp_emulator.reset_counts()
    entries = [(f"d/f{i}", 15) for i in (7, 4, 1)] + [("../escape", 1)]
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="p/", entries=iter(entries)))
    assert (stats.ok, stats.skipped, stats.errors) == (2, 1, 1)  # f4 already remote; ../escape refused
    assert set(hcp_emulator.stored(hcp_bucket, "p/")) == {"p/d/f1", "p/d/f4", "p/d/f7"}
    assert hcp_emulator.request_counts[LIST] == 1


async def test_symlinks_skipped_unless_followed(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"real/f": b"1"})
    make_tree(tmp_path, {"elsewhere/g": b"2"})
    (src / "ln").symlink_to(tmp_path / "elsewhere")
    (src / "real" / "loop").symlink_to(src)
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker))
    assert stats.ok == 1 and set(hcp_emulator.stored(hcp_bucket)) == {"real/f"}
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="f/", follow_symlinks=True))
    assert stats.ok == 2  # the loop was reported (one error), never walked forever
    assert set(hcp_emulator.stored(hcp_bucket, "f/")) == {"f/real/f", "f/ln/g"}


def test_config_validation(tmp_path) -> None:
    with pytest.raises(ValueError):
        BulkUploadConfig(client=None, bucket="bkt", source_dir=tmp_path, tracker=None, workers=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BulkUploadConfig(client=None, bucket="bkt", source_dir=tmp_path, tracker=None, include="*.tif")  # type: ignore[arg-type]
    c = BulkUploadConfig(client=None, bucket="bkt", source_dir=str(tmp_path), tracker=None)  # type: ignore[arg-type]
    assert c.source_dir == tmp_path and c.workers == 10 and c.queue_depth == 8
    assert c.presign_batch_size == 1000 and c.chunk_size == 1 << 20 and c.skip_existing
    assert c.progress_interval == 5.0 and not c.follow_symlinks and c.entries is None
    assert TransferStatus.done  # tracker protocol available to callers


async def test_retries_counted_from_the_data_plane(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"f{i}": content(i, 25) for i in range(4)})
    hcp_emulator.faults.add(plane="data", method="PUT", path="/f1$", status=503, count=2)
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker))
    assert (stats.ok, stats.errors, stats.retries) == (4, 0, 2)
    assert hcp_emulator.stored(hcp_bucket) == files


async def test_api_and_data_retries_are_counted_apart(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    """A presign call that fails twice and a PUT that fails once: the run counts 2 API retries
    and 1 transfer retry; a second run on the same client counts only its own."""
    src = tmp_path / "src"
    files = make_tree(src, {f"f{i}": content(i, 20) for i in range(5)})
    hcp_emulator.faults.add(plane="api", method="POST", path=r"/objects/presign$", status=503, count=2)
    hcp_emulator.faults.add(plane="data", method="PUT", status=500, count=1)
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker))
    assert (stats.ok, stats.errors) == (5, 0)
    assert (stats.api_retries, stats.retries) == (2, 1)
    assert hcp_emulator.stored(hcp_bucket) == files
    hcp_emulator.faults.add(plane="api", method="POST", path=r"/objects/presign$", status=429, count=1)
    again = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="b/"))
    assert (again.ok, again.api_retries, again.retries) == (5, 1, 0)


async def test_a_file_onto_an_existing_key_of_a_namespace_without_overwrite_replaces_it(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    """HCP's default namespace refuses a write onto an existing key (409): the engine deletes
    that object and sends the file again; an object on hold is not deleted, and its file fails
    naming retention or hold (never a login problem)."""
    src = tmp_path / "src"
    files = make_tree(src, {"a": content(1, 40), "b": content(2, 40), "held": content(3, 40)})
    s3 = hcp_emulator.s3
    for key in ("p/a", "p/held"):
        s3.put_object(Bucket=hcp_bucket, Key=key, Body=b"old")
    hcp_emulator.set_hold(hcp_bucket, "p/held")
    hcp_emulator.reset_counts()
    failed: list[tuple[str, BaseException]] = []
    stats = await bulk_upload(
        cfg(hcp_client, hcp_bucket, src, tracker, prefix="p/", skip_existing=False,
            on_error=lambda key, exc: failed.append((key, exc)))
    )
    assert (stats.ok, stats.errors) == (2, 1)
    remote = hcp_emulator.stored(hcp_bucket, "p/")
    assert remote["p/a"] == files["a"] and remote["p/b"] == files["b"] and remote["p/held"] == b"old"
    assert hcp_emulator.request_counts[PUT] == 4  # b; a refused, then sent after the delete; held refused
    [(key, exc)] = failed
    assert key == "p/held" and "retention or" in str(exc) and "AuthenticationError" not in type(exc).__name__


async def test_a_resend_refused_a_moment_after_the_delete_is_retried_with_backoff(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    """HCP may still refuse the name for a moment after the delete (409): the resend backs off
    and tries again instead of failing the file."""
    src = tmp_path / "src"
    files = make_tree(src, {"a": content(1, 40)})
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="p/a", Body=b"old")
    hcp_emulator.reset_counts()
    busy = hcp_emulator.faults.add(plane="data", method="PUT", path="/p/a$", status=409, count=3)
    stats = await bulk_upload(cfg(hcp_client, hcp_bucket, src, tracker, prefix="p/", skip_existing=False))
    assert (stats.ok, stats.errors) == (1, 0)
    assert busy.hits == 3, "three refusals after the delete, each retried"
    assert hcp_emulator.stored(hcp_bucket, "p/") == {"p/a": files["a"]}
    assert hcp_emulator.request_counts[PUT] == 5  # the existing object's refusal, 3 after the delete, the PUT that lands


async def test_a_large_file_rewritten_during_its_multipart_upload_is_deferred_and_aborted(
    hcp_emulator, hcp_bucket, hcp_credentials, tracker, tmp_path
) -> None:
    """A file rewritten in place while its parts are sent (same size, its mtime moved) is
    deferred like a small one, never an error: the upload is aborted, nothing is stored, no
    multipart upload is left open, and the next run sends it."""
    mib = 1024 * 1024
    src = tmp_path / "src"
    files = make_tree(src, {"big": os.urandom(11 * mib), "small": b"s" * 100})
    hcp_emulator.faults.add(plane="data", method="PUT", path="/big$", delay=0.3, count=None)  # parts in flight a while
    rewritten = threading.Event()

    def rewrite_during_the_first_part() -> None:
        deadline = time.monotonic() + 10
        while hcp_emulator.request_counts[PART] < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        with open(src / "big", "r+b") as handle:  # same size, new bytes: only the mtime says so
            handle.write(b"rewritten")
        rewritten.set()

    async with HCPClient(**hcp_credentials, multipart_threshold=6 * mib, multipart_chunk=5 * mib) as client:
        changer = threading.Thread(target=rewrite_during_the_first_part, daemon=True)
        changer.start()
        errors: dict[str, BaseException] = {}
        stats = await bulk_upload(cfg(client, hcp_bucket, src, tracker, on_error=errors.__setitem__))
        changer.join(10)
        assert rewritten.is_set()
        assert (stats.ok, stats.errors, stats.changed_during_run) == (1, 0, 1), errors
        assert stats.deferred == ["big"]
        assert set(hcp_emulator.stored(hcp_bucket)) == {"small"}
        assert hcp_emulator.s3.list_multipart_uploads(Bucket=hcp_bucket).get("Uploads", []) == []
        assert set(tracker.entries()) == {"small"}

        again = await bulk_upload(cfg(client, hcp_bucket, src, tracker))
    assert (again.ok, again.skipped, again.errors) == (1, 1, 0)
    assert hcp_emulator.stored(hcp_bucket)["big"] == (src / "big").read_bytes() != files["big"]
