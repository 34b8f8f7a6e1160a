"""Faults: 10 % of API and of data-plane requests fail (500, 503, 429, dropped connection) or
stall 5 s, and a 1,000-file bulk upload then bulk download through the flows still completes
with every byte identical, no duplicate or stray object, the trackers matching the store, and
retries bounded and counted in the summary.

Stalls: the client timeout (10 s) is longer than a stall (5 s), so a stalled request is a slow
answer, not a failure: it costs time, never a retry. A stall longer than the timeout is a
retryable timeout instead; ``test_stall_longer_than_the_timeout_is_retried`` shows that case.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPCredentials
from rahcp_prefect.client import HCPClient
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.flows.download import staging_dir_for
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState

from .helpers import (
    api_requests,
    bucket_hashes,
    bucket_listing,
    data_requests,
    flow_artifacts,
    job_tracker,
    open_multipart_uploads,
    partial_files,
    summary_metric,
    tree_hashes,
)

MIB = 1024 * 1024
FILES = 1000
STALL = 5.0
TIMEOUT = 10.0
MAX_RETRIES = 5
KINDS: dict[str, dict[str, Any]] = {
    "500": {"status": 500},
    "503": {"status": 503},
    "429": {"status": 429},
    "drop": {"drop": True},
    "stall": {"delay": STALL},
}
"""Each kind fires on 2 % of requests of its plane: about 10 % of requests hit some fault."""


def _make_source(root: Path) -> dict[str, str]:
    """1,000 files: small ones of random sizes (some empty), two streamed (> 1 MiB chunk) and
    one multipart (> the 8 MiB threshold of the test settings)."""
    rng = random.Random(20260101)
    for index in range(FILES - 3):
        path = root / f"box{index % 10}" / f"scan-{index:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.choice((0, 1, 100, 1000, 4000))))
    for name, size in (("streamed-a.bin", 2 * MIB + 3), ("streamed-b.bin", 3 * MIB), ("multipart.bin", 11 * MIB)):
        (root / "large").mkdir(exist_ok=True)
        (root / "large" / name).write_bytes(os.urandom(size))
    return tree_hashes(root)


def _add_faults(emulator: Any) -> dict[tuple[str, str], Any]:
    return {
        (plane, kind): emulator.faults.add(plane, count=None, probability=0.02, **spec)
        for plane in ("api", "data")
        for kind, spec in KINDS.items()
    }


def _failing_hits(rules: dict[tuple[str, str], Any], plane: str) -> int:
    """Requests of ``plane`` that a fault made fail (stalls only slow a request down)."""
    return sum(rule.hits for (p, kind), rule in rules.items() if p == plane and kind != "stall")


@pytest.mark.slow
async def test_upload_then_download_of_1000_files_under_10_percent_faults(
    saved_blocks: SavedBlocks, hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    await HCPCredentials(
        endpoint=hcp_credentials["endpoint"], username=hcp_credentials["username"],
        password=SecretStr(hcp_credentials["password"]), tenant=hcp_credentials["tenant"],
        retry_base_delay=0.01, max_retries=MAX_RETRIES, timeout=TIMEOUT,
    ).save(saved_blocks.credentials, overwrite=True)
    source = tmp_path / "src"
    expected = _make_source(source)
    assert len(expected) == FILES
    # The manifest is off here so every request is one of the 1,000 files (tests/integration/test_manifest.py
    # covers the manifest itself).
    params = {**saved_blocks.params(), "settings_overrides": {"workers": 32, "write_manifest": False}}
    rules = _add_faults(hcp_emulator)

    # -- upload through staging, verify, commit -------------------------------------------------
    state = await bulk_upload(
        source_dir=str(source), bucket=hcp_bucket, prefix="final/", return_state=True, **params
    )
    assert state.is_completed(), state.message
    up = await state.result()
    up_data = data_requests(hcp_emulator)
    up_api = api_requests(hcp_emulator)
    up_failed = _failing_hits(rules, "data")
    api_failed = _failing_hits(rules, "api")
    stalls = rules["data", "stall"].hits + rules["api", "stall"].hits
    assert up["ok"] == FILES and up["errors"] == 0 and up["committed"] == FILES
    assert up_failed > 20 and api_failed > 20 and stalls > 5, "the faults really fired"
    # Every failure was retried once more, and the summary counts exactly those: transfers
    # (data plane) and API requests (login, presign, listing, multipart, verify, commit) apart.
    assert up["retries"] == up_failed
    assert up["api_retries"] == api_failed
    artifacts = await flow_artifacts(state.state_details.flow_run_id)
    assert summary_metric(artifacts, "transfers retried") == up_failed
    assert summary_metric(artifacts, "API requests retried") == api_failed
    # Bounded: one request per file (three parts for the multipart one) plus one per retry.
    assert up_data == FILES + 2 + up_failed < 2 * FILES
    assert up_api < 3 * FILES

    listing = bucket_listing(hcp_emulator, hcp_bucket)
    assert len(listing) == len({key for key, _ in listing}) == FILES, "no duplicate, no stray object"
    assert bucket_hashes(hcp_emulator, hcp_bucket, "final/") == {f"final/{rel}": h for rel, h in expected.items()}
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
    assert open_multipart_uploads(hcp_emulator, hcp_bucket) == []
    with job_tracker(saved_blocks.tracker_path, up["job"]) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committed
        assert tracker.summary() == {"pending": 0, "done": FILES, "error": 0}
        staging = info.staging_prefix or ""
        committed = {"final/" + key[len(staging):]: size for key, size in tracker.done_entries().items()}
        assert committed == dict(listing), "the tracker's done set is exactly the store"

    # -- download into a staging folder, then into place --------------------------------------
    hcp_emulator.reset_counts()
    dest = tmp_path / "dest"
    state = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="final/", return_state=True, **params
    )
    assert state.is_completed(), state.message
    down = await state.result()
    down_failed = _failing_hits(rules, "data") - up_failed
    down_api_failed = _failing_hits(rules, "api") - api_failed
    hcp_emulator.faults.clear()
    assert down["ok"] == FILES and down["errors"] == 0 and down["moved"] == FILES
    assert down_failed > 20
    assert down["retries"] == down_failed
    assert down["api_retries"] == down_api_failed
    # one GET per file plus one per retry, and the download's one look for the prefix's manifest
    assert data_requests(hcp_emulator) == FILES + 1 + down_failed < 2 * FILES

    assert tree_hashes(dest) == expected, "every file byte-identical, nothing extra"
    assert partial_files(tmp_path) == [] and not staging_dir_for(dest.resolve()).exists()
    with job_tracker(saved_blocks.tracker_path, down["job"]) as tracker:
        assert tracker.summary() == {"pending": 0, "done": FILES, "error": 0}
        assert tracker.done_entries() == dict(listing)


async def test_stall_longer_than_the_timeout_is_retried(
    hcp_credentials: dict[str, Any], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """A request that stalls past the client timeout is a retryable timeout on both planes."""
    async with HCPClient(**hcp_credentials, timeout=0.5, max_retries=2, retry_base_delay=0.01) as client:
        api_stall = hcp_emulator.faults.add("api", method="GET", path=r"/objects$", delay=1.0, count=1)
        data_stall = hcp_emulator.faults.add("data", method="PUT", delay=1.0, count=1)
        await client.s3.upload(hcp_bucket, "k", b"payload")
        page = await client.s3.list_objects(hcp_bucket)
        assert client.data.retries == 1
    assert (api_stall.hits, data_stall.hits) == (1, 1)
    assert [item["Key"] for item in page["objects"]] == ["k"]
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="k")["Body"].read() == b"payload"


async def test_every_data_plane_retry_is_counted(
    hcp_client: HCPClient, hcp_emulator: Any, hcp_bucket: str
) -> None:
    """A dropped connection is retried by the SDK's own loop (counted, within max_retries),
    never silently resent by aiohttp: two requests on the wire, one counted retry."""
    url = await hcp_client.s3.presign_put(hcp_bucket, "k")
    before = hcp_client.data.retries
    for method in ("PUT", "GET"):
        hcp_emulator.reset_counts()
        rule = hcp_emulator.faults.add("data", method=method, drop=True, count=1)
        if method == "PUT":
            await hcp_client.data.put_bytes(url, b"payload", what=f"{hcp_bucket}/k")
        else:
            get_url = await hcp_client.s3.presign_get(hcp_bucket, "k")
            assert await hcp_client.data.get_bytes(get_url, what=f"{hcp_bucket}/k") == b"payload"
        assert rule.hits == 1
        assert data_requests(hcp_emulator, method) == 2
    assert hcp_client.data.retries - before == 2
