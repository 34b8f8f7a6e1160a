"""HCPBucket against the emulator and the session's Prefect API: result storage read back by
a later run, code storage round trips with odd names, objects, folders through the engine,
paths that try to leave the base folder."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task
from prefect.cache_policies import INPUTS
from prefect.client.orchestration import get_client
from rahcp_prefect.blocks import HCPBucket, HCPTransferSettings
from rahcp_prefect.bucket import FolderTransferError, PathEscapesBucketFolder
from rahcp_prefect.job.mtimes import MTIMES_NAME
from rahcp_prefect.testing.counter import LOGIN
from rahcp_prefect.testing.prefect_fixtures import emulator_credentials

ODD_TREE = {
    "with space.txt": b"spaces",
    "100% done.txt": b"percent",
    "hash#tag.txt": b"hash",
    "plus+equals=amp&.txt": b"query-ish",
    "ünïcødé/ファイル.bin": "unicode ✓".encode(),
    "deep/er/and deeper/leaf #1 (copy).dat": bytes(range(256)) * 40,
    "empty.bin": b"",
}


def _bucket(creds: dict[str, Any], bucket: str, folder: str = "", **extra: Any) -> HCPBucket:
    return HCPBucket(
        bucket_name=bucket,
        bucket_folder=folder,
        credentials=emulator_credentials(creds),
        **extra,
    )


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _read_tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _without_times(tree: dict[str, bytes]) -> dict[str, bytes]:
    """A downloaded tree without the tag file of its files' times."""
    return {rel: data for rel, data in tree.items() if rel != MTIMES_NAME}


def _keys(emulator: Any, bucket: str, prefix: str = "") -> set[str]:
    listed = emulator.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"] for item in listed}


async def test_flow_results_stored_in_the_bucket_are_read_back_by_later_runs(
    prefect_api: None, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str
) -> None:
    name = f"results-{uuid.uuid4().hex[:8]}"
    await _bucket(hcp_credentials, hcp_bucket, "prefect/results").save(name)
    storage = await HCPBucket.aload(name)
    calls: list[int] = []

    @task(cache_policy=INPUTS, persist_result=True, result_storage=storage)
    def square(value: int) -> int:
        calls.append(value)
        return value * value

    @flow(persist_result=True, result_storage=storage)
    def pipeline(value: int) -> dict[str, int]:
        return {"square": square(value), "value": value}

    first = pipeline(12, return_state=True)
    assert calls == [12]
    stored = _keys(hcp_emulator, hcp_bucket)
    assert stored and all(key.startswith("prefect/results/") for key in stored)

    second = pipeline(12, return_state=True)
    assert calls == [12], "the second run should take the task's result from the bucket's cache"
    assert await second.aresult() == {"square": 144, "value": 12}

    # The flow's result, read back through the API: the state only names the storage block.
    async with get_client() as client:
        run = await client.read_flow_run(first.state_details.flow_run_id)
    assert run.state is not None and run.state.is_completed()
    assert await run.state.aresult() == {"square": 144, "value": 12}

    # Without the objects in the bucket the cache is gone: the task runs again.
    for key in _keys(hcp_emulator, hcp_bucket):
        hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key=key)
    assert (await pipeline(12, return_state=True).aresult())["square"] == 144
    assert calls == [12, 12]


def test_put_then_get_directory_round_trips_odd_names_through_the_engine(
    hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "project"
    _write_tree(source, {**ODD_TREE, "build.log": b"noise", ".git/HEAD": b"ref: main"})
    for n, rel in enumerate(ODD_TREE):  # times from 2003 on: provenance a copy keeps
        os.utime(source / rel, ns=(1_050_000_000_123_456_789 + n * 10**15,) * 2)
    (tmp_path / ".ignore").write_text("*.log\n.git/\n")
    bucket = _bucket(hcp_credentials, hcp_bucket, "code", settings=HCPTransferSettings(presign_batch_size=3))

    uploaded = bucket.put_directory(str(source), "v1", ignore_file=str(tmp_path / ".ignore"))

    assert uploaded == len(ODD_TREE)
    # the files and, beside them, their modification times (issue 23)
    assert _keys(hcp_emulator, hcp_bucket) == {f"code/v1/{rel}" for rel in ODD_TREE} | {f"code/v1/{MTIMES_NAME}"}
    counts = hcp_emulator.request_counts
    # the files went through the engine; one by one only the tag file of their times (read, written)
    assert counts[("api", "POST", "/presign")] == 2, "files went one by one, not through the engine"
    assert counts[("api", "POST", "/buckets/{bucket}/objects/presign")] >= 2  # batches of 3

    bucket.get_directory("v1", str(tmp_path / "pulled"))
    pulled = _read_tree(tmp_path / "pulled")
    assert pulled.pop(MTIMES_NAME) and pulled == ODD_TREE
    for rel in ODD_TREE:  # every file keeps its time
        assert (tmp_path / "pulled" / rel).stat().st_mtime_ns == (source / rel).stat().st_mtime_ns, rel


async def test_async_forms_and_folder_methods(
    hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    bucket = _bucket(hcp_credentials, hcp_bucket, "a/b")
    _write_tree(tmp_path / "src", ODD_TREE)

    # Inside async code the plain names dispatch to the async forms (and are awaitable).
    assert await bucket.write_path("x/result.json", b'{"ok": 1}') == "a/b/x/result.json"
    assert await bucket.read_path("x/result.json") == b'{"ok": 1}'
    assert await bucket.aread_path("/x//./result.json") == b'{"ok": 1}'
    assert await bucket.aupload_from_folder(tmp_path / "src", "tree") == "a/b/tree/"
    assert await bucket.aput_directory(str(tmp_path / "src"), "tree2") == len(ODD_TREE)
    target = await bucket.adownload_folder_to_path("tree", tmp_path / "back")
    assert _without_times(_read_tree(target)) == ODD_TREE
    await bucket.aget_directory(local_path=str(tmp_path / "everything"))
    assert _without_times(_read_tree(tmp_path / "everything" / "tree")) == ODD_TREE
    assert (tmp_path / "everything" / "x" / "result.json").read_bytes() == b'{"ok": 1}'
    listed = await bucket.alist_objects("tree")
    assert {item["Key"] for item in listed} == {f"a/b/tree/{rel}" for rel in ODD_TREE} | {f"a/b/tree/{MTIMES_NAME}"}
    assert len(await bucket.alist_objects("", max_items=3)) == 3


def test_objects_paths_file_objects_copy_move_delete(
    hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    bucket = _bucket(hcp_credentials, hcp_bucket, "objects")
    other = _bucket(hcp_credentials, hcp_bucket, "elsewhere")
    local = tmp_path / "report 100%.csv"
    local.write_bytes(b"a,b\n1,2\n")

    assert bucket.upload_from_path(local) == "objects/report 100%.csv"
    assert bucket.upload_from_file_object(io.BytesIO(b"streamed #1"), "in/stream.bin") == "objects/in/stream.bin"
    assert bucket.download_object_to_path("report 100%.csv", tmp_path / "out" / "r.csv").read_bytes() == b"a,b\n1,2\n"
    sink = io.BytesIO()
    assert bucket.download_object_to_file_object("in/stream.bin", sink) is sink
    assert sink.getvalue() == b"streamed #1"

    assert bucket.copy_object("in/stream.bin", "copy.bin") == "objects/copy.bin"
    assert bucket.copy_object("in/stream.bin", "c.bin", to_bucket=other) == "elsewhere/c.bin"
    assert bucket.move_object("copy.bin", "moved.bin") == "objects/moved.bin"
    assert bucket.move_object("moved.bin", "moved.bin") == "objects/moved.bin"  # onto itself: kept
    bucket.delete_object("report 100%.csv")
    bucket.delete_object("never-there")  # idempotent
    assert _keys(hcp_emulator, hcp_bucket) == {"objects/in/stream.bin", "objects/moved.bin", "elsewhere/c.bin"}
    assert other.read_path("c.bin") == b"streamed #1"
    assert {item["Key"] for item in bucket.list_objects()} == {"objects/in/stream.bin", "objects/moved.bin"}


def test_paths_cannot_leave_the_base_folder(
    hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    bucket = _bucket(hcp_credentials, hcp_bucket, "tenant-a/results")
    hcp_emulator.reset_counts()
    escapes = [
        lambda: bucket.read_path("../tenant-b/secret"),
        lambda: bucket.write_path("x/../../../etc", b"x"),
        lambda: bucket.get_directory("..", str(tmp_path / "d")),
        lambda: bucket.put_directory(str(tmp_path), "../.."),
        lambda: bucket.upload_from_folder(tmp_path, "ok/../../up"),
        lambda: bucket.copy_object("a", "../../b"),
        lambda: bucket.delete_object("../results-other/file"),
        lambda: bucket.list_objects("../"),
    ]
    for attempt in escapes:
        with pytest.raises(PathEscapesBucketFolder, match=r"leaves the bucket folder of .*tenant-a/results"):
            attempt()
    with pytest.raises(ValueError, match="names no object"):
        bucket.write_path("sub/..", b"x")
    with pytest.raises(ValueError, match="climbs above the bucket"):
        _bucket(hcp_credentials, hcp_bucket, "a/../../b")
    with pytest.raises(TypeError, match="takes no extra options, got ExtraArgs"):
        bucket.upload_from_path(tmp_path, "x", ExtraArgs={"ACL": "public-read"})
    assert not hcp_emulator.request_counts, "a refused path must fail before any request"


def test_a_failed_file_of_a_folder_fails_the_call_naming_it(
    hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str, tmp_path: Path
) -> None:
    _write_tree(tmp_path / "src", {"good.txt": b"ok", "bad.txt": b"will fail"})
    bucket = _bucket(hcp_credentials, hcp_bucket, "f")
    hcp_emulator.faults.add("data", method="PUT", path="bad\\.txt", status=403, count=None)
    with pytest.raises(FolderTransferError, match=r"1 file\(s\) failed \(.*bad\.txt"):
        bucket.upload_from_folder(tmp_path / "src")
    assert hcp_credentials["password"] not in repr(bucket)



def test_calls_reuse_the_last_login_and_log_in_again_when_the_token_expires(
    prefect_api: None, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str
) -> None:
    """Result storage writes one object per result: the block logs in once and reuses the
    token (in memory, never saved or shown); a 401 (expired token) logs in once more."""
    block = _bucket(hcp_credentials, hcp_bucket, "tokens")
    hcp_emulator.reset_counts()
    for index in range(5):
        block.write_path(f"r{index}", b"result %d" % index)
    assert block.read_path("r3") == b"result 3"
    assert hcp_emulator.request_counts[LOGIN] == 1
    first = block._token
    assert first and first not in repr(block) and first not in block.model_dump_json()

    expired = hcp_emulator.faults.add("api", method="POST", path=r"/presign$", status=401, count=1)
    block.write_path("after-expiry", b"late")
    assert expired.hits == 1 and hcp_emulator.request_counts[LOGIN] == 2
    assert block._token, "the new login's token serves the next call"
    assert block.read_path("after-expiry") == b"late"
    assert hcp_emulator.request_counts[LOGIN] == 2
