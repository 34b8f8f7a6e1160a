"""bulk_download against the emulator: every config field, temp-then-rename, unsafe keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.bulk import (
    BulkDownloadConfig,
    TransferStats,
    UnsafeKeyError,
    VerificationError,
    bulk_download,
)
from rahcp_prefect.bulk.download import FIRST_PAGE
from rahcp_prefect.testing.counter import (
    DATA_GET as GET,
    LIST_OBJECTS as LIST,
    PRESIGN as PRESIGN_ONE,
    PRESIGN_BULK,
)

from .conftest import content, local_files


def cfg(client: Any, bucket: str, dest: Path, tracker: Any, **kw: Any) -> BulkDownloadConfig:
    return BulkDownloadConfig(client=client, bucket=bucket, dest_dir=dest, tracker=tracker, **kw)


def put(emulator: Any, bucket: str, objects: dict[str, bytes]) -> dict[str, bytes]:
    for key, body in objects.items():
        emulator.s3.put_object(Bucket=bucket, Key=key, Body=body)
    emulator.reset_counts()
    return objects


def spy(client: Any, name: str) -> list[str]:
    """Record the ``dest``/``what`` of each call to ``client.data.<name>``."""
    calls: list[str] = []
    real = getattr(client.data, name)

    async def wrapper(*args: Any, **kw: Any) -> Any:
        calls.append(str(args[1]) if name == "get_to_file" else kw["what"])
        return await real(*args, **kw)

    setattr(client.data, name, wrapper)
    return calls


async def test_download_prefix(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    objects = put(hcp_emulator, hcp_bucket, {f"p/d{i % 2}/f {i}.bin": content(i, 10 + i) for i in range(20)})
    put(hcp_emulator, hcp_bucket, {"other/x": b"not under the prefix", "p/folder/": b""})
    dest = tmp_path / "dest"
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker, prefix="p/", presign_batch_size=6))
    assert (stats.ok, stats.errors, stats.skipped) == (20, 0, 1)  # the folder marker is skipped
    assert stats.bytes == sum(len(v) for v in objects.values()) and stats.mb_per_sec > 0
    assert local_files(dest) == {k[2:]: v for k, v in objects.items()}
    assert hcp_emulator.request_counts[PRESIGN_BULK] == 4 and hcp_emulator.request_counts[LIST] == 1
    assert tracker.summary()["done"] == 20


async def test_skip_files_on_disk_with_right_size(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    objects = put(hcp_emulator, hcp_bucket, {f"f{i}": content(i, 30) for i in range(5)})
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f0").write_bytes(objects["f0"])  # right size and bytes: kept as it is
    (dest / "f1").write_bytes(b"wrong size")  # replaced
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker))
    assert (stats.ok, stats.skipped) == (4, 1)
    assert (dest / "f0").read_bytes() == objects["f0"] and (dest / "f1").read_bytes() == objects["f1"]
    assert "f0" in tracker.done_keys()
    hcp_emulator.reset_counts()
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker))
    assert (stats.ok, stats.skipped) == (0, 5) and hcp_emulator.request_counts[GET] == 0


async def test_temp_name_then_rename_and_stream_threshold(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    objects = put(hcp_emulator, hcp_bucket, {"small.tif": b"s" * 100, "large.tif": os.urandom(300_000)})
    ranged = spy(hcp_client, "get_range_into")
    one_shot = spy(hcp_client, "get_bytes")
    seen: list[str] = []

    def validate(path: Path) -> None:
        seen.append(path.name)
        assert path.suffix == ".tif" and not (path.parent / path.name.removeprefix(".rahcp-part.")).exists()

    dest = tmp_path / "dest"
    stats = await bulk_download(
        cfg(hcp_client, hcp_bucket, dest, tracker, stream_threshold=1000, chunk_size=64 * 1024, validate_file=validate)
    )
    assert stats.ok == 2
    assert ranged == [f"{hcp_bucket}/large.tif (range 1/1)"], "at the threshold: ranged GETs"
    assert one_shot == [f"{hcp_bucket}/small.tif"]
    assert sorted(seen) == [".rahcp-part.large.tif", ".rahcp-part.small.tif"]  # validated before rename
    assert local_files(dest) == objects  # no temporary file left behind
    assert tracker.unvalidated_keys() == []


async def test_validate_failure_removes_file(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    put(hcp_emulator, hcp_bucket, {"good": b"ok", "bad": b"corrupt", "big-bad": b"x" * 5000})

    def validate(path: Path) -> None:
        if path.read_bytes() != b"ok":
            raise ValueError("not ok")

    errors: dict[str, BaseException] = {}
    dest = tmp_path / "dest"
    stats = await bulk_download(
        cfg(hcp_client, hcp_bucket, dest, tracker, validate_file=validate, stream_threshold=1000, on_error=errors.__setitem__)
    )
    assert (stats.ok, stats.errors) == (1, 2)
    assert sorted(errors) == ["bad", "big-bad"]
    assert local_files(dest) == {"good": b"ok"}  # failed files removed, temp files too
    assert sorted(k for k, _ in tracker.error_entries()) == ["bad", "big-bad"]


async def test_verify_download(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    put(hcp_emulator, hcp_bucket, {"a": b"12345", "b": b"x" * 3000})
    dest = tmp_path / "dest"
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker, verify_download=True, stream_threshold=1000))
    assert stats.ok == 2 and tracker.unverified_keys() == []
    # a size other than the listed one is caught and the file is not kept
    errors: dict[str, BaseException] = {}
    stats = await bulk_download(
        cfg(hcp_client, hcp_bucket, tmp_path / "d2", tracker, verify_download=True, entries=[("a", 4), ("b", 2999)],
            stream_threshold=1000, on_error=errors.__setitem__)
    )
    assert stats.errors == 2 and all(isinstance(e, VerificationError) for e in errors.values())
    assert local_files(tmp_path / "d2") == {}


@pytest.mark.parametrize("key", ["a/../../etc/x", "/abs", "a/./b", "a//b", "../up"])
async def test_keys_outside_dest_dir_are_refused(key, hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    # The SDK refuses such keys, so they are created straight in moto through boto3.
    put(hcp_emulator, hcp_bucket, {key: b"evil", "safe": b"fine"})
    assert key in {o["Key"] for o in hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["Contents"]}
    before = set(tmp_path.rglob("*"))
    dest = tmp_path / "a" / "b" / "dest"
    errors: dict[str, BaseException] = {}
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker, on_error=errors.__setitem__))
    assert (stats.ok, stats.errors) == (1, 1)
    assert isinstance(errors[key], UnsafeKeyError)
    assert [k for k, _ in tracker.error_entries()] == [key]
    written = {p for p in set(tmp_path.rglob("*")) - before if p.is_file() and p.name != "tracker.db-wal"}
    assert written == {dest / "safe"}
    assert not Path("/abs").exists() and not (tmp_path / "a" / "etc").exists()


async def test_symlink_in_dest_cannot_lead_out(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    put(hcp_emulator, hcp_bucket, {"link/x": b"evil", "ok": b"fine"})
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker))
    assert (stats.ok, stats.errors) == (1, 1)
    assert list(outside.iterdir()) == []


async def test_include_exclude_entries_retry_errors(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    objects = put(hcp_emulator, hcp_bucket, {"a.tif": b"1", "b.jpg": b"2", "d/c.tif": b"3", "d/c_thumb.tif": b"4"})
    dest = tmp_path / "dest"
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker, include=["*.tif"], exclude=["*_thumb*"]))
    assert stats.ok == 2 and set(local_files(dest)) == {"a.tif", "d/c.tif"}
    # an explicit work list: no listing at all
    hcp_emulator.reset_counts()
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, tmp_path / "d2", tracker, entries=[("b.jpg", 1)]))
    assert stats.ok == 1 and hcp_emulator.request_counts[LIST] == 0
    # errors, then retry_errors runs only those
    hcp_emulator.faults.add(plane="data", method="GET", path="/d/c", status=400, count=None)
    seen: list[str] = []
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, tmp_path / "d3", tracker, on_error=lambda k, e: seen.append(k)))
    assert (stats.ok, stats.errors) == (2, 2) and sorted(seen) == ["d/c.tif", "d/c_thumb.tif"]
    hcp_emulator.faults.clear()
    hcp_emulator.reset_counts()
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, tmp_path / "d3", tracker, retry_errors=True))
    assert (stats.ok, stats.errors) == (2, 0) and hcp_emulator.request_counts[GET] == 2
    assert local_files(tmp_path / "d3") == objects


async def test_expired_url_presigned_again(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    objects = put(hcp_emulator, hcp_bucket, {f"f{i}": content(i, 20) for i in range(4)})
    hcp_emulator.faults.add(plane="data", method="GET", path="/f2$", status=403, count=1)
    calls: list[TransferStats] = []
    dest = tmp_path / "dest"
    stats = await bulk_download(cfg(hcp_client, hcp_bucket, dest, tracker, on_progress=calls.append))
    assert (stats.ok, stats.errors, stats.retries) == (4, 0, 1)
    assert hcp_emulator.request_counts[PRESIGN_ONE] == 1
    assert local_files(dest) == objects
    assert len(calls) == 1 and calls[0].ok == 4  # progress_interval 5 s: only the final call


def test_download_config_defaults(tmp_path) -> None:
    c = BulkDownloadConfig(client=None, bucket="bkt", dest_dir=str(tmp_path), tracker=None)  # type: ignore[arg-type]
    assert c.dest_dir == tmp_path and c.stream_threshold == 100 * 1024 * 1024 and not c.verify_download
    with pytest.raises(ValueError):
        BulkDownloadConfig(client=None, bucket="bkt", dest_dir=tmp_path, tracker=None, stream_threshold=-1)  # type: ignore[arg-type]


async def test_listing_is_paged_lazily(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    """A short first page (the first GETs wait for it alone), then pages of 1,000, the next one
    asked for half-way through the current one, never more ahead: the listing is never read
    whole up front."""
    put(hcp_emulator, hcp_bucket, {f"k{i:04d}": b"x" for i in range(1201)})  # pages of 100, 1000 and 101
    hcp_emulator.faults.add(plane="data", method="GET", delay=0.005, count=None)
    lists_at: dict[int, int] = {}

    def progress(s: TransferStats) -> None:
        for done in (1, 500, 1150):
            if s.ok >= done and done not in lists_at:
                lists_at[done] = hcp_emulator.request_counts[LIST]

    stats = await bulk_download(
        cfg(hcp_client, hcp_bucket, tmp_path / "dest", tracker, workers=4, queue_depth=2, presign_batch_size=20,
            on_progress=progress, progress_interval=0)
    )
    assert stats.ok == 1201
    assert FIRST_PAGE == 100
    # The producer runs at most ~50 items ahead of the files done (2 presign batches of 20, the
    # queue, the workers). Page 2 (keys 100 to 1099) is asked for half-way through page 1, before
    # its first file is done or just after; at file 500 the producer is short of half-way through
    # page 2 (key 600), so page 3 is not asked for yet; at file 1150 it was.
    assert lists_at[1] in (1, 2) and lists_at[500] == 2 and lists_at[1150] == 3
    assert hcp_emulator.request_counts[LIST] == 3
