# flows/nightly_archive.py
import asyncio
from pathlib import Path
from prefect import flow
from rahcp_prefect.blocks import HCPCredentials
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.tasks import head_object, upload_object

@flow
async def nightly_archive(source: str, bucket: str, prefix: str) -> dict:
    result = await bulk_upload(source_dir=source, bucket=bucket, prefix=prefix,
                               credentials_block="hcp", settings_block="hcp-settings",
                               tracker_block="hcp-tracker", settings_overrides={"workers": 16})
    credentials = await HCPCredentials.aload("hcp")
    await upload_object(credentials, bucket, f"{prefix}MANIFEST.txt", b"uploaded by nightly_archive\n")
    print(await head_object(credentials, bucket, f"{prefix}MANIFEST.txt"))
    await bulk_download(bucket=bucket, prefix=prefix, dest_dir="restore",
                        credentials_block="hcp", tracker_block="hcp-tracker")
    return result

if __name__ == "__main__":
    Path("scans/box-1").mkdir(parents=True, exist_ok=True)
    Path("scans/box-1/page-1.txt").write_text("page one\n")
    print(asyncio.run(nightly_archive("scans", "archive", "2026/")))
