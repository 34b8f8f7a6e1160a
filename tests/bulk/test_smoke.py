from pathlib import Path

from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, bulk_download, bulk_upload

from .conftest import content, local_files, make_tree, remote_objects


async def test_roundtrip(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"d{i % 3}/f{i}.bin": content(i, 1000 + i) for i in range(50)})
    stats = await bulk_upload(BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=src, tracker=tracker, prefix="p/", presign_batch_size=7))
    assert (stats.ok, stats.errors, stats.skipped) == (50, 0, 0), stats
    assert remote_objects(hcp_emulator, hcp_bucket) == {f"p/{k}": v for k, v in files.items()}
    dest = tmp_path / "dest"
    stats = await bulk_download(BulkDownloadConfig(client=hcp_client, bucket=hcp_bucket, dest_dir=dest, tracker=tracker, prefix="p/"))
    assert (stats.ok, stats.errors) == (50, 0), stats
    assert local_files(dest) == files
