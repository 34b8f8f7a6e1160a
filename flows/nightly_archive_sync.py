# flows/nightly_archive_sync.py
import asyncio
from prefect import flow
from rahcp_prefect.blocks import HCPCredentials
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.tasks import list_objects

@flow
def nightly_archive_sync(source: str, bucket: str, prefix: str) -> int:
    asyncio.run(bulk_upload(source_dir=source, bucket=bucket, prefix=prefix,
                            credentials_block="hcp", tracker_block="hcp-tracker"))
    objects = list_objects.submit(HCPCredentials.load("hcp"), bucket, prefix).result()
    return len(objects)

if __name__ == "__main__":
    print(nightly_archive_sync("scans", "archive", "sync/"))
