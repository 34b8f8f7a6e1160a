"""The commit's fixity record as a stream: tag files written and read line by line in path order
(``tagstream``), the records' union merged from files on disk (``RecordChain``), and
``recording.record_commit`` over several nights: full, nothing written, delta, full again after a
file left the prefix; a file held without a SHA-256 hashed from the prefix; a record above the
multipart threshold sent from disk and checked by its digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job import plan_staging
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME, ManifestError, manifest_line, parse_manifest_line
from rahcp_prefect.job.mtimes import mtime_line
from rahcp_prefect.job.records import RECORDS_DIR, RecordChain, read_fixity
from rahcp_prefect.job.recording import record_commit
from rahcp_prefect.job.tagstream import ListingSpool, TagWriter, file_sha256, read_sorted
from rahcp_prefect.testing.counter import PART_PUT
from rahcp_prefect.tracker import TransferStatus

OpenTracker = Callable[..., Any]
FINAL = "final/"


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_a_tag_writer_keeps_the_digests_of_what_it_wrote_and_refuses_lines_out_of_order(tmp_path: Path) -> None:
    writer: TagWriter[str] = TagWriter(tmp_path / "m", manifest_line)
    writer.add("a b.txt", "A" * 64)
    writer.add("é/x\n", "b" * 64)
    with pytest.raises(ValueError, match="out of order"):
        writer.add("a", "c" * 64)
    writer.close()
    data = (tmp_path / "m").read_bytes()
    assert data == f"{'a' * 64}  a b.txt\n{'b' * 64}  é/x%0A\n".encode()
    assert (writer.lines, writer.md5, writer.sha256) == (2, hashlib.md5(data).hexdigest(), sha(data))
    assert file_sha256(tmp_path / "m") == writer.sha256
    assert list(read_sorted(tmp_path / "m", parse_manifest_line, "m")) == [("a b.txt", "a" * 64), ("é/x\n", "b" * 64)]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (f"{'a' * 64}  b\r\n{'a' * 64}  a\r\n", "line 2: 'a' is not sorted by path"),
        (f"{'a' * 64}  a\n{'b' * 64}  a\n", "line 2: 'a' lists it twice"),
        (f"{'a' * 64}  a\nnot a line\n", "line 2 is not '<sha256>  <path>'"),
    ],
)
def test_reading_a_tag_file_as_a_stream_names_the_line_that_breaks_the_order(tmp_path: Path, body: str, problem: str) -> None:
    (tmp_path / "m").write_bytes(body.encode())
    with pytest.raises(ManifestError, match=problem):
        list(read_sorted(tmp_path / "m", parse_manifest_line, "bkt/p/m"))


def test_the_union_of_records_takes_each_paths_newest_digest_and_newest_time(tmp_path: Path) -> None:
    def record(name: str, digests: dict[str, str], times: dict[str, int]) -> tuple[Path, Path]:
        manifest: TagWriter[str] = TagWriter(tmp_path / f"{name}.m", manifest_line)
        for path in sorted(digests):
            manifest.add(path, digests[path])
        stamps: TagWriter[int] = TagWriter(tmp_path / f"{name}.t", mtime_line)
        for path in sorted(times):
            stamps.add(path, times[path])
        manifest.close()
        stamps.close()
        return manifest.path, stamps.path

    newest = record("3", {"b": "3" * 64}, {})  # b sent again, recorded without a time
    middle = record("2", {"c": "2" * 64, "d": "2" * 64}, {"c": 20, "d": 21, "x": 9})
    full = record("1", {"a": "1" * 64, "b": "1" * 64, "c": "1" * 64}, {"a": 10, "b": 11, "c": 12})
    chain = RecordChain(files=[newest, middle, full], where=["n", "m", "f"], source="records")
    assert list(chain.lines()) == [
        ("a", "1" * 64, 10),
        ("b", "3" * 64, 11),  # the newest digest; the newest record that gives a time
        ("c", "2" * 64, 20),
        ("d", "2" * 64, 21),
        ("x", None, 9),  # a time no manifest lists: bulk-verify names it
    ]


class Night:
    """The job's tracker and the final prefix as a commit's moves leave them."""

    def __init__(self, emulator: Any, tracker: Any, bucket: str) -> None:
        self.emulator, self.tracker, self.bucket = emulator, tracker, bucket
        self.plan = plan_staging(tracker, bucket, FINAL, "run-1")

    def place(self, name: str, body: bytes, mtime: int | None = 1, with_sha: bool = True) -> None:
        self.emulator.s3.put_object(Bucket=self.bucket, Key=FINAL + name, Body=body)
        self.tracker.mark(
            self.plan.staging_prefix + name, len(body), TransferStatus.done, mtime_ns=mtime,
            sha256=sha(body) if with_sha else None, md5=hashlib.md5(body).hexdigest(),
        )
        self.tracker.flush()

    def records(self) -> list[str]:
        answer = self.emulator.s3.list_objects_v2(Bucket=self.bucket, Prefix=FINAL + RECORDS_DIR)
        return sorted({item["Key"].rsplit("/", 1)[0] for item in answer.get("Contents", [])})

    def body(self, key: str) -> bytes:
        return bytes(self.emulator.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())


async def test_four_nights_of_records_full_nothing_delta_then_full_when_a_file_left(
    open_tracker: OpenTracker, hcp_emulator: Any, hcp_client: HCPClient, hcp_bucket: str
) -> None:
    night = Night(hcp_emulator, open_tracker(), hcp_bucket)
    night.place("a.txt", b"A", mtime=5)
    night.place("old.bin", b"held without a digest", with_sha=False)  # an older release's file
    night.place("Z.txt", b"Z", mtime=2)  # UTF-8 byte order: "Z" < "a" < "old.bin" < "é"
    night.place("é.txt", b"E", mtime=3)
    first = await record_commit(hcp_client, night.tracker, night.plan)
    assert (first.files, first.root, first.problems) == (4, "written", [])
    assert first.record is not None and first.record.endswith("-full/")
    assert night.body(first.record + MANIFEST_NAME) == night.body(FINAL + MANIFEST_NAME) == (
        f"{sha(b'Z')}  Z.txt\n{sha(b'A')}  a.txt\n{sha(b'held without a digest')}  old.bin\n{sha(b'E')}  é.txt\n".encode()
    ), "the file without a recorded SHA-256 hashed from the prefix"
    assert night.body(first.record + MTIMES_NAME) == "2  Z.txt\n5  a.txt\n1  old.bin\n3  é.txt\n".encode()

    hcp_emulator.reset_counts()
    quiet = await record_commit(hcp_client, night.tracker, night.plan)
    assert (quiet.record, quiet.files, quiet.root) == (None, 4, "unchanged")
    writes = {key: n for key, n in hcp_emulator.request_counts.items() if key[1] in ("PUT", "POST", "DELETE")}
    assert not [key for key in writes if key[0] == "data"], f"a night with nothing to do writes nothing: {writes}"

    night.place("a.txt", b"A", mtime=6)  # the same bytes, a new time
    night.place("c.txt", b"C", mtime=7)
    delta = await record_commit(hcp_client, night.tracker, night.plan)
    assert delta.record is not None and delta.record.endswith("-delta/") and delta.files == 5
    assert night.body(delta.record + MANIFEST_NAME) == f"{sha(b'A')}  a.txt\n{sha(b'C')}  c.txt\n".encode()
    assert night.body(delta.record + MTIMES_NAME) == b"6  a.txt\n7  c.txt\n"
    fixity = await read_fixity(hcp_client, hcp_bucket, FINAL)
    assert fixity.mtimes == {FINAL + "Z.txt": 2, FINAL + "a.txt": 6, FINAL + "c.txt": 7, FINAL + "old.bin": 1, FINAL + "é.txt": 3}
    assert (fixity.records, fixity.since_full) == ([r.removeprefix(FINAL + RECORDS_DIR).rstrip("/") for r in (delta.record, first.record)], 1)

    hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key=FINAL + "old.bin")
    night.tracker.delete(night.plan.staging_prefix + "old.bin")
    night.tracker.flush()
    gone = await record_commit(hcp_client, night.tracker, night.plan)
    assert gone.record is not None and gone.record.endswith("-full/"), "only a full record can say a file left"
    assert night.body(gone.record + MANIFEST_NAME) == night.body(FINAL + MANIFEST_NAME) == (
        f"{sha(b'Z')}  Z.txt\n{sha(b'A')}  a.txt\n{sha(b'C')}  c.txt\n{sha(b'E')}  é.txt\n".encode()
    )
    assert len(night.records()) == 3


async def test_a_record_above_the_multipart_threshold_goes_up_from_disk_and_is_checked_by_its_digest(
    open_tracker: OpenTracker, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str
) -> None:
    night = Night(hcp_emulator, open_tracker(), hcp_bucket)
    for index in range(60):
        night.emulator.s3.put_object(Bucket=hcp_bucket, Key=f"{FINAL}d/{index:05d}", Body=b"%d" % index)
        night.tracker.mark(
            f"{night.plan.staging_prefix}d/{index:05d}", len(b"%d" % index), TransferStatus.done,
            mtime_ns=index, sha256=sha(b"%d" % index),
        )
    night.tracker.flush()
    async with HCPClient(**hcp_credentials, multipart_threshold=4096, retry_base_delay=0.01) as client:
        hcp_emulator.reset_counts()
        recorded = await record_commit(client, night.tracker, night.plan)
    assert (recorded.files, recorded.root, recorded.problems) == (60, "written", [])
    assert hcp_emulator.request_counts[PART_PUT] >= 2, "the record's and the root's manifests (over 4 KiB) went up in parts"
    body = night.body(FINAL + MANIFEST_NAME)
    assert len(body) > 4096 and body.count(b"\n") == 60
    assert body.splitlines()[0] == f"{sha(b'0')}  d/00000".encode()


def test_a_listing_spool_gives_back_every_key_and_etag_in_order(tmp_path: Path) -> None:
    spool = ListingSpool(tmp_path / "listing")
    spool.reset()
    spool.add("a b.txt", '"0cc175b9c0f1b6a831c399e269772661"')
    spool.add("c\nd%0A.txt", "")
    assert list(spool) == [("a b.txt", '"0cc175b9c0f1b6a831c399e269772661"'), ("c\nd%0A.txt", "")]
    spool.reset()  # a listing read again (a listing cache's grace) replaces the first
    spool.add("z", '"e"')
    assert list(spool) == [("z", '"e"')]


async def test_the_record_walks_the_final_checks_listing_instead_of_listing_the_prefix_again(
    open_tracker: OpenTracker, hcp_emulator: Any, hcp_client: HCPClient, hcp_bucket: str, tmp_path: Path
) -> None:
    from rahcp_prefect.job import check_final
    from rahcp_prefect.testing.counter import LIST_OBJECTS

    night = Night(hcp_emulator, open_tracker(), hcp_bucket)
    night.place("a.txt", b"A")
    night.place("b.txt", b"B")
    listing = ListingSpool(tmp_path / "listing")
    assert (await check_final(hcp_client, night.tracker, night.plan, spool=listing)).ok
    hcp_emulator.reset_counts()
    recorded = await record_commit(hcp_client, night.tracker, night.plan, listing)
    assert (recorded.files, recorded.root, recorded.problems) == (2, "written", [])
    assert hcp_emulator.request_counts[LIST_OBJECTS] == 1, "only the records' folder is listed"
