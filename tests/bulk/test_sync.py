"""The sync decision per file (new / changed / missing / unchanged / existing), the ordered
lookups it reads from, and the scanner's mtime_ns (one stat per file)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rahcp_prefect.bulk.existing import RemoteSizes
from rahcp_prefect.bulk.scanner import scan_tree
from rahcp_prefect.bulk.sync import (
    SENDS,
    Change,
    SortedRecords,
    StoredSizes,
    SyncCounts,
    decide,
    plan_sync,
)
from rahcp_prefect.testing.counter import DATA_PUT as PUT

T = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("size", "mtime", "record", "stored", "listed", "adopt", "expected"),
    [
        (10, T, None, None, False, False, Change.new),
        (10, T, None, 10, True, False, Change.new),  # the flow never adopts
        (10, T, None, 10, True, True, Change.existing),  # the engine's skip_existing
        (10, T, None, 9, True, True, Change.new),  # another size remote: send
        (10, T, None, 10, False, True, Change.new),  # adoption needs a listing
        (10, T, (10, T), None, False, False, Change.unchanged),  # no listing: trust the record
        (10, T, (10, T), 10, True, False, Change.unchanged),
        (10, T, (10, T), None, True, False, Change.missing),  # deleted from the bucket
        (10, T, (10, T), 7, True, False, Change.missing),  # another object under the key
        (10, T + 1, (10, T), 10, True, False, Change.changed),  # rewritten in place, same size
        (11, T, (10, T), 10, True, False, Change.changed),  # grown, same mtime (utime'd back)
        (11, T + 5, (10, T), None, True, True, Change.changed),
        (10, T, (10, None), 10, True, False, Change.changed),  # a record from before mtime_ns
        (10, None, (10, None), 10, True, False, Change.changed),  # mtime unknown: never trusted
        (0, T, (0, T), 0, True, False, Change.unchanged),  # empty files too
    ],
)
def test_decide(
    size: int, mtime: int | None, record: tuple[int, int | None] | None, stored: int | None,
    listed: bool, adopt: bool, expected: Change,
) -> None:
    assert decide(size, mtime, record, stored, listed=listed, adopt=adopt) is expected
    assert (expected in SENDS) == (expected in {Change.new, Change.changed, Change.missing})


def test_counts_leave_adopted_files_out() -> None:
    counts = SyncCounts()
    for change in [Change.new, Change.new, Change.changed, Change.missing, Change.unchanged, Change.existing]:
        counts.add(change)
    assert counts.as_dict() == {"new": 2, "changed": 1, "unchanged": 1, "missing": 1}


def test_sorted_records_answer_in_order_and_out_of_order_as_unknown() -> None:
    pulled: list[str] = []

    def rows():
        for key in ["a", "b", "d"]:
            pulled.append(key)
            yield key, len(key), T

    records = SortedRecords(rows())
    assert records.lookup("a") == (1, T)
    assert pulled == ["a"]  # lazy: nothing read ahead of the question
    assert records.lookup("c") is None
    assert records.lookup("d") == (1, T)
    assert records.lookup("b") is None  # out of order: unknown, so the file is sent (safe)
    assert records.lookup("e") is None


async def _listing(items: list[tuple[str, int]], asked: list[str]) -> AsyncIterator[tuple[str, int, str | None]]:
    for key, size in items:
        asked.append(key)
        yield key, size, None


async def test_plan_sends_new_changed_and_missing_and_counts_every_case() -> None:
    files = [("a", 1, T), ("b", 2, T + 1), ("c", 3, T), ("d", 4, T), ("e", 5, T), ("f", 6, T)]
    records = SortedRecords(
        [
            ("stg/a", 1, T),  # unchanged, committed (in final)
            ("stg/b", 2, T),  # rewritten in place: mtime differs
            ("stg/c", 3, T),  # deleted from the final prefix
            ("stg/d", 4, T),  # unchanged, staged by a run that did not commit yet
            ("stg/e", 9, T),  # grown... here: size differs
        ]
    )
    listed: list[str] = []
    stored = StoredSizes(
        RemoteSizes(_listing([("stg/d", 4)], listed)),
        RemoteSizes(_listing([("fin/a", 1), ("fin/b", 2), ("fin/e", 9), ("fin/f", 6)], listed)),
        "stg/",
        "fin/",
    )
    counts = SyncCounts()
    sent = [item async for item in plan_sync(files, records, stored, counts, record_prefix="stg/")]
    assert sent == [
        ("b", 2, T + 1, Change.changed), ("c", 3, T, Change.missing), ("e", 5, T, Change.changed), ("f", 6, T, Change.new)
    ]
    assert counts.as_dict() == {"new": 1, "changed": 2, "unchanged": 2, "missing": 1}


async def test_plan_without_listing_trusts_records_and_without_records_sends_all() -> None:
    files = [("a", 1, T), ("b", 2, T)]
    counts = SyncCounts()
    got = [i[:3] async for i in plan_sync(files, SortedRecords([("a", 1, T)]), None, counts)]
    assert got == [("b", 2, T)] and counts.as_dict() == {"new": 1, "changed": 0, "unchanged": 1, "missing": 0}
    counts = SyncCounts()
    got = [i[:3] async for i in plan_sync(files, None, None, counts)]
    assert got == files and counts.new == 2
    counts = SyncCounts()  # skip_existing=False: counted as they are, every file sent
    got = [i async for i in plan_sync(files, SortedRecords([("a", 1, T)]), None, counts, send_all=True)]
    assert got == [("a", 1, T, Change.unchanged), ("b", 2, T, Change.new)] and counts.unchanged == 1


def test_scan_yields_mtime_ns_from_its_one_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["a", "b", "sub/c"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * len(name))
    os.utime(tmp_path / "b", ns=(T, T + 123))
    calls: list[str] = []
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    got = {rel: (size, mtime) for rel, _path, size, mtime in scan_tree(tmp_path)}
    monkeypatch.undo()
    assert got["b"] == (1, T + 123)
    assert got["a"] == (1, real_stat(tmp_path / "a").st_mtime_ns)
    assert got["sub/c"][0] == 5
    assert len(calls) == 3  # one stat per file, none per directory, nothing more


# -- the engine alone: records with mtime, changed files sent again ----------------------------


async def test_engine_sends_files_changed_in_place_or_grown_and_records_their_mtime(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload
    from rahcp_prefect.tracker import TransferStatus

    from .conftest import content, make_tree

    src = tmp_path / "src"
    make_tree(src, {f"f{i}": content(i, 20) for i in range(6)})
    # The engine alone writes the final keys here (a job writes staging keys): overwrites on, so
    # the PUT count is only about which files are sent (the 409 replace: bulk/test_upload.py).
    hcp_emulator.configure_namespace(hcp_bucket, overwrite=True)

    def run(**kw):  # type: ignore[no-untyped-def]
        return bulk_upload(BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=src, tracker=tracker, prefix="p/", **kw))

    first = await run()
    assert first.ok == 6
    recorded = tracker.entries(TransferStatus.done)
    assert recorded["p/f0"].mtime_ns == os.stat(src / "f0").st_mtime_ns  # as sent, from the scan
    (src / "f1").write_bytes(b"R" * 20)  # rewritten in place, same size...
    os.utime(src / "f1", ns=(T, T))  # ...with an mtime surely not the recorded one
    (src / "f2").write_bytes(content(2, 20) + b"grown")
    hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key="p/f3")  # gone from the bucket
    hcp_emulator.reset_counts()
    again = await run()
    assert (again.ok, again.skipped, again.errors) == (3, 3, 0)
    assert hcp_emulator.request_counts[PUT] == 3  # f1, f2, f3: unchanged files cost no PUT
    remote = hcp_emulator.stored(hcp_bucket, "p/")
    assert remote["p/f1"] == b"R" * 20 and remote["p/f2"] == content(2, 20) + b"grown"
    assert remote["p/f3"] == content(3, 20)
    recorded = tracker.entries(TransferStatus.done)
    assert (recorded["p/f1"].size, recorded["p/f1"].mtime_ns) == (20, T)
    assert recorded["p/f2"].size == 25
    # skip_existing=False trusts the records alone: a deleted object is not seen, nothing is sent
    hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key="p/f4")
    hcp_emulator.reset_counts()
    trusted = await run(skip_existing=False)
    assert (trusted.ok, trusted.skipped) == (0, 6) and hcp_emulator.request_counts[PUT] == 0


async def test_engine_defers_a_streamed_file_rewritten_while_it_is_sent(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path
) -> None:
    """Same size, new mtime between the scan and the end of the send: deferred (counted and
    named, never done, its stored copy removed), not an error."""
    from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload

    from .conftest import make_tree

    src = tmp_path / "src"
    make_tree(src, {"big.bin": b"a" * 200_000})  # above chunk_size: streamed
    errors: list[BaseException] = []

    def rewrite(path) -> None:  # type: ignore[no-untyped-def]  # validate_file runs before the send
        with open(path, "r+b") as handle:
            handle.write(b"b")
        os.utime(path, ns=(T, T))

    stats = await bulk_upload(
        BulkUploadConfig(
            client=hcp_client, bucket=hcp_bucket, source_dir=src, tracker=tracker, chunk_size=64 * 1024,
            validate_file=rewrite, on_error=lambda key, exc: errors.append(exc),
        )
    )
    assert stats.errors == 0 and errors == []
    assert (stats.changed_during_run, stats.vanished, stats.deferred) == (1, 0, ["big.bin"])
    assert tracker.done_keys() == set() and tracker.entries() == {}
    assert hcp_emulator.stored(hcp_bucket) == {}, "the copy stored before the change was seen is removed"


@pytest.mark.parametrize(
    ("local", "record", "listed", "adopt", "expected"),
    [
        (None, None, 5, False, Change.new),
        ((5, T), None, 5, False, Change.new),  # the flow: not written by this job, fetched
        ((5, T), None, 5, True, Change.existing),  # the engine's resume: adopted by size
        ((4, T), None, 5, True, Change.new),
        (None, (5, T), 5, False, Change.missing),  # deleted locally
        ((5, T), (5, T), 5, False, Change.unchanged),
        ((5, T + 1), (5, T), 5, False, Change.changed),  # edited in place, or touched
        ((3, T), (5, T), 5, False, Change.changed),  # truncated
        ((5, T), (5, T), 6, False, Change.changed),  # the object changed size
        ((5, T), (5, None), 5, False, Change.changed),  # recorded before mtime_ns was
    ],
)
def test_decide_download(
    local: tuple[int, int] | None, record: tuple[int, int | None] | None, listed: int, adopt: bool, expected: Change
) -> None:
    from rahcp_prefect.bulk.sync import decide_download

    assert decide_download(local, record, listed, adopt=adopt) is expected


async def test_plan_adopts_files_staged_before_their_mark_reached_the_tracker() -> None:
    files = [("a", 1, T), ("b", 2, T), ("c", 3, T)]
    adopted: list[tuple[str, int, int]] = []
    stored = StoredSizes(
        RemoteSizes(_listing([("stg/a", 1), ("stg/b", 7)], [])), RemoteSizes(_listing([], [])), "stg/", "fin/"
    )
    counts = SyncCounts()
    sent = [i[:3] async for i in plan_sync(files, SortedRecords([]), stored, counts, "stg/", adopt=lambda *a: adopted.append(a))]
    assert adopted == [("a", 1, T)]  # staged with its size: kept, recorded
    assert sent == [("b", 2, T), ("c", 3, T)]  # another size staged, or not staged: sent
    assert counts.as_dict() == {"new": 2, "changed": 0, "unchanged": 1, "missing": 0}


async def test_plan_adopts_files_the_final_prefix_holds_as_its_fixity_records_list_them() -> None:
    """No tracker record (a lost tracker): a file the final prefix holds with its size, which
    the records list with its mtime, is adopted with its recorded SHA-256; any other is sent."""
    files = [("a", 1, T), ("b", 2, T), ("c", 3, T), ("d", 4, T)]
    lines = {"a": ("sha-a", T), "b": ("sha-b", T + 1), "c": ("sha-c", T), "d": ("sha-d", None)}
    asked: list[str] = []
    adopted: list[tuple[str, int, int, str]] = []

    async def archived(rel: str, size: int, mtime_ns: int) -> bool:
        asked.append(rel)
        sha, mtime = lines[rel]
        if mtime != mtime_ns:
            return False
        adopted.append((rel, size, mtime_ns, sha))
        return True

    final = [("fin/a", 1), ("fin/b", 2), ("fin/c", 9), ("fin/d", 4)]
    stored = StoredSizes(RemoteSizes(_listing([], [])), RemoteSizes(_listing(final, [])), "stg/", "fin/")
    counts = SyncCounts()
    sent = [i[:3] async for i in plan_sync(files, SortedRecords([]), stored, counts, "stg/", archived=archived)]
    assert adopted == [("a", 1, T, "sha-a")]
    assert sent == [("b", 2, T), ("c", 3, T), ("d", 4, T)], "another mtime, another size, no recorded time"
    assert asked == ["a", "b", "d"], "a file the final prefix holds with another size is not asked about"
    assert counts.as_dict() == {"new": 3, "changed": 0, "unchanged": 1, "missing": 0}
