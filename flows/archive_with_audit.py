"""The nightly archive with an audit: bulk-upload a folder, then bulk-verify what was committed.

The upload is all or nothing (staging, verify against the tracker, commit, final check) and
writes the job's ``manifest-sha256.txt``; the audit then re-reads every committed object and
hashes it against that manifest, so the run fails, naming the objects, when a byte differs, an
object is missing or one is extra. Deploy it from a checkout, for example nightly, with the
flow's required parameters (``tests/packaging/test_readme.py`` deploys it so and reads them back):

    prefect --no-prompt deploy flows/archive_with_audit.py:archive_with_audit -n nightly --pool rahcp-process \\
        --cron "0 2 * * *" --param source_dir=/data/scans --param bucket=archive --param prefix=2026/
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.flows.verify import bulk_verify


@flow(name="archive-with-audit", log_prints=True)
async def archive_with_audit(
    source_dir: str,
    bucket: str,
    prefix: str,
    credentials_block: str = "hcp",
    settings_block: str = "hcp-settings",
    tracker_block: str = "hcp-tracker",
) -> dict[str, Any]:
    """Upload ``source_dir`` to ``bucket/prefix``, then audit the prefix against its manifest."""
    blocks = {"credentials_block": credentials_block, "settings_block": settings_block}
    uploaded = await bulk_upload(source_dir=source_dir, bucket=bucket, prefix=prefix,
                                 tracker_block=tracker_block, **blocks)
    audit = await bulk_verify(bucket=bucket, prefix=prefix, against="manifest", **blocks)
    print(f"archived {uploaded['ok']} file(s) to {bucket}/{prefix}; audit: {audit['matches']} match the manifest")
    return {"uploaded": uploaded, "audit": audit}
