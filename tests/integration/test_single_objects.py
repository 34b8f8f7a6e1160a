"""The single-object tasks and ``HCPBucket`` on HCP namespaces, two nights in a row: the second
night writes over the first through the commit's own mechanism (``S3Ops.write`` /
``copy_over``: a write where the namespace allows it, the safe replace where it refuses), and an
object on hold is named in a ``RetentionError`` and left as it was."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.blocks import HCPBucket
from rahcp_prefect.client import RetentionError
from rahcp_prefect.tasks import (
    commit_staging, copy_object, delete_object, delete_objects, upload_multipart, upload_object,
)
from rahcp_prefect.testing.counter import LOGIN
from rahcp_prefect.testing.prefect_fixtures import emulator_credentials

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=[pytest.param({}, id="hcp-default"), pytest.param({"versioning": True}, id="versioned"),
                        pytest.param({"overwrite": True}, id="overwrite-on")])
def namespace(request: pytest.FixtureRequest, hcp_emulator: Any, hcp_bucket: str) -> dict[str, Any]:
    """``hcp_bucket`` as HCP's default namespace, a versioned one, one with the overwrite option."""
    hcp_emulator.configure_namespace(hcp_bucket, **request.param)
    return dict(request.param)


def _body(emulator: Any, bucket: str, key: str) -> bytes:
    return emulator.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


async def test_the_single_object_tasks_write_over_on_the_second_night(
    prefect_api: None, hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any], tmp_path: Path,
    namespace: dict[str, Any],
) -> None:
    credentials = emulator_credentials(hcp_credentials)
    for night in (1, 2):
        body = f"night {night}\n".encode()
        await upload_object(credentials, hcp_bucket, "out/MANIFEST.txt", body)
        (tmp_path / "big.bin").write_bytes(body * 1000)
        await upload_multipart(credentials, hcp_bucket, "out/big.bin", tmp_path / "big.bin")
        copied = await copy_object(credentials, hcp_bucket, "out/copy.txt", hcp_bucket, "out/MANIFEST.txt")
        assert copied == {"bucket": hcp_bucket, "key": "out/copy.txt", "replaced": night == 2 and not namespace}
        assert _body(hcp_emulator, hcp_bucket, "out/MANIFEST.txt") == _body(hcp_emulator, hcp_bucket, "out/copy.txt") == body
        assert _body(hcp_emulator, hcp_bucket, "out/big.bin") == body * 1000


async def test_the_tasks_name_a_held_object_and_do_not_retry_it(
    prefect_api: None, hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any]
) -> None:
    credentials = emulator_credentials(hcp_credentials)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="kept.txt", Body=b"held")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="src.txt", Body=b"new")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="gone.txt", Body=b"x")
    hcp_emulator.set_hold(hcp_bucket, "kept.txt")
    for name, run in (
        ("upload_object", lambda: upload_object(credentials, hcp_bucket, "kept.txt", b"new", return_state=True)),
        ("copy_object", lambda: copy_object(credentials, hcp_bucket, "kept.txt", hcp_bucket, "src.txt", return_state=True)),
        ("delete_object", lambda: delete_object(credentials, hcp_bucket, "kept.txt", return_state=True)),
        ("delete_objects", lambda: delete_objects(credentials, hcp_bucket, ["kept.txt", "gone.txt"], return_state=True)),
    ):
        hcp_emulator.reset_counts()
        state = await run()
        assert state.is_failed(), name
        assert hcp_emulator.request_counts[LOGIN] == 1, f"{name}: a retry cannot release a hold, none is made"
        with pytest.raises(RetentionError, match=rf"{hcp_bucket}/kept.txt cannot be"):
            await state.result()
    assert _body(hcp_emulator, hcp_bucket, "kept.txt") == b"held"


async def test_hcp_bucket_writes_copies_and_moves_over_on_the_second_night(
    prefect_api: None, hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any], tmp_path: Path,
    namespace: dict[str, Any],
) -> None:
    storage = HCPBucket(bucket_name=hcp_bucket, bucket_folder="results", credentials=emulator_credentials(hcp_credentials))
    for night in (1, 2):
        body = f"night {night}\n".encode()
        await storage.awrite_path("result.json", body)
        (tmp_path / "report.txt").write_bytes(body)
        await storage.aupload_from_path(tmp_path / "report.txt", "report.txt")
        await storage.aupload_from_file_object(io.BytesIO(body), "stream.bin")
        await storage.acopy_object("result.json", "copy.json")
        await storage.aupload_from_path(tmp_path / "report.txt", "to-move.txt")
        await storage.amove_object("to-move.txt", "moved.txt")
        await storage.aupload_from_folder(tmp_path, "folder")
        for key in ("result.json", "report.txt", "stream.bin", "copy.json", "moved.txt", "folder/report.txt"):
            assert _body(hcp_emulator, hcp_bucket, f"results/{key}") == body, (night, key)
        assert await storage.aread_path("result.json") == body


async def test_hcp_bucket_names_a_held_object_and_leaves_it(
    prefect_api: None, hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any]
) -> None:
    storage = HCPBucket(bucket_name=hcp_bucket, credentials=emulator_credentials(hcp_credentials))
    await storage.awrite_path("kept.txt", b"held")
    await storage.awrite_path("src.txt", b"new")
    hcp_emulator.set_hold(hcp_bucket, "kept.txt")
    for call in (lambda: storage.awrite_path("kept.txt", b"new"), lambda: storage.acopy_object("src.txt", "kept.txt"),
                 lambda: storage.amove_object("src.txt", "kept.txt"), lambda: storage.adelete_object("kept.txt")):
        with pytest.raises(RetentionError, match=rf"{hcp_bucket}/kept.txt cannot be"):
            await call()
    assert _body(hcp_emulator, hcp_bucket, "kept.txt") == b"held"
    assert _body(hcp_emulator, hcp_bucket, "src.txt") == b"new", "a move that could not place its object keeps it"


async def test_the_commit_task_commits_the_way_the_flows_do_night_after_night(
    prefect_api: None, hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any],
    namespace: dict[str, Any],
) -> None:
    """``commit_staging`` is the flows' one commit task: night 2 replaces a changed object where
    the namespace refuses overwrites, and an object on hold is left, named, with its first bytes
    (a versioned namespace stores a new version over it: the held version stays)."""
    credentials = emulator_credentials(hcp_credentials)
    versioned = bool(namespace.get("versioning"))
    for night in (1, 2):
        for name in ("a.txt", "b.txt", "held.txt"):
            hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"stage/{name}", Body=f"{name} {night}".encode())
        moves = await commit_staging(credentials, hcp_bucket, "stage/", "final/", concurrency=2)
        if night == 1:
            assert (moves["moved"], moves["replaced"], moves["left"]) == (3, 0, [])
            hcp_emulator.set_hold(hcp_bucket, "final/held.txt")
        else:
            assert moves["left"] == ([] if versioned else ["stage/held.txt"])
            assert (moves["moved"], moves["replaced"]) == (3 if versioned else 2, 0 if namespace else 2)
        assert moves["kept"] == 0 and moves["api_retries"] == 0 and moves["copies_in_flight"]
        assert _body(hcp_emulator, hcp_bucket, "final/a.txt") == f"a.txt {night}".encode()
        held = b"held.txt 2" if versioned and night == 2 else b"held.txt 1"
        assert _body(hcp_emulator, hcp_bucket, "final/held.txt") == held
        listed = hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket, Prefix="stage/").get("Contents", [])
        assert listed == [], "staging is emptied, the held object's staged copy too"
