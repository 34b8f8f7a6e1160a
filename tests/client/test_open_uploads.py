"""SDK: open multipart uploads (list, abort one, abort all under a prefix past one page) and
common prefixes, against the emulator; ``cleanup_staging`` leaves no open upload behind."""

from __future__ import annotations

from typing import Any

from rahcp_prefect.client import HCPClient


def _open(emulator: Any, bucket: str, *keys: str) -> dict[str, str]:
    """Start a multipart upload for each key (one part sent, never completed): ``{key: id}``."""
    ids: dict[str, str] = {}
    for key in keys:
        upload_id = emulator.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        emulator.s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"part")
        ids[key] = upload_id
    return ids


def _still_open(emulator: Any, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in emulator.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


async def test_list_and_abort_multipart_uploads(hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str) -> None:
    ids = _open(hcp_emulator, hcp_bucket, "stg/a/1.bin", "stg/a/2.bin", "stg/b/keep.bin", "other/x.bin")
    page = await hcp_client.s3.list_multipart_uploads(hcp_bucket, "stg/")
    assert set(page) == {"bucket", "uploads", "is_truncated"} and page["is_truncated"] is False
    assert sorted(u["Key"] for u in page["uploads"]) == ["stg/a/1.bin", "stg/a/2.bin", "stg/b/keep.bin"]
    assert {u["Key"]: u["UploadId"] for u in page["uploads"]}["stg/a/1.bin"] == ids["stg/a/1.bin"]
    assert all(u["Initiated"].endswith("Z") for u in page["uploads"])

    aborted = await hcp_client.s3.abort_multipart_uploads(
        hcp_bucket, "stg/", keep=lambda upload: upload["Key"].endswith("keep.bin")
    )
    assert sorted(u["Key"] for u in aborted) == ["stg/a/1.bin", "stg/a/2.bin"]
    assert _still_open(hcp_emulator, hcp_bucket) == ["other/x.bin", "stg/b/keep.bin"]
    assert await hcp_client.s3.abort_multipart_upload(hcp_bucket, "stg/a/1.bin", ids["stg/a/1.bin"]) is False
    assert await hcp_client.s3.abort_multipart_upload(hcp_bucket, "other/x.bin", ids["other/x.bin"]) is True
    assert _still_open(hcp_emulator, hcp_bucket) == ["stg/b/keep.bin"]


async def test_abort_gets_past_the_first_page(hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str) -> None:
    """The API lists uploads without a marker: aborting page after page reaches them all,
    and a page of spared uploads ends the search instead of looping."""
    _open(hcp_emulator, hcp_bucket, *(f"stg/{i}.bin" for i in range(7)))
    page = await hcp_client.s3.list_multipart_uploads(hcp_bucket, "stg/", max_uploads=2)
    assert len(page["uploads"]) == 2 and page["is_truncated"] is True
    aborted = await hcp_client.s3.abort_multipart_uploads(hcp_bucket, "stg/", page_size=2)
    assert len(aborted) == 7 and _still_open(hcp_emulator, hcp_bucket) == []

    _open(hcp_emulator, hcp_bucket, *(f"stg/{i}.bin" for i in range(5)))
    kept = await hcp_client.s3.abort_multipart_uploads(hcp_bucket, "stg/", keep=lambda u: True, page_size=2)
    assert kept == [] and len(_still_open(hcp_emulator, hcp_bucket)) == 5


async def test_cleanup_staging_aborts_open_uploads_under_it(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str
) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="stg/done.txt", Body=b"done")
    _open(hcp_emulator, hcp_bucket, "stg/big.bin", "elsewhere/big.bin")
    assert await hcp_client.s3.cleanup_staging(hcp_bucket, "stg/") == 1
    assert _still_open(hcp_emulator, hcp_bucket) == ["elsewhere/big.bin"]
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket, Prefix="stg/").get("KeyCount") == 0


async def test_iter_prefixes_lists_folders_one_level_down_every_page(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str
) -> None:
    for key in ("root/a/1", "root/a/2", "root/b/1", "root/c/d/1", "root/e/1", "root/top.txt", "other/z/1"):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=b"x")
    hcp_emulator.reset_counts()
    found = [p async for p in hcp_client.s3.iter_prefixes(hcp_bucket, "root/", page_size=2)]
    assert found == ["root/a/", "root/b/", "root/c/", "root/e/"]
    assert hcp_emulator.request_counts[("api", "GET", "/buckets/{bucket}/objects")] >= 2, "several pages"
