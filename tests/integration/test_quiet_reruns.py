"""Reruns that have nothing to do write nothing, and a retained file is sent once per retry step.

The bulk-upload flow on the HCP-faithful emulator. On every namespace kind (versioned, no
overwrite, overwrite, a default retention with staging in another namespace, a hold, and a
plain target staged in another namespace) a second night with nothing changed sends no PUT and
no DELETE, and after each night every file is in a fixity record. With a short retention
(``+10s``) a changed file whose archived object is retained is sent once when refused, not again
while it waits, and once more when the retention has ended (then placed).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job.retained import MONTH, NIGHT, WEEK, next_try
from rahcp_prefect.testing.counter import DATA_PUT
from rahcp_prefect.tracker import create_tracker

from .conftest import SavedBlocks, make_tree
from .test_fixity_records import PREFIX, covered, writes

KINDS: dict[str, dict[str, Any]] = {
    "versioned": {"versioning": True},
    "no-overwrite": {"versioning": False, "overwrite": False},
    "overwrite": {"overwrite": True},
    "retention": {"retention": "+1y"},
    "held": {},
    "staging-namespace": {},
}


@pytest.fixture
def staging_bucket(hcp_staging_bucket: str) -> str:
    return hcp_staging_bucket


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_rerun_with_nothing_to_do_writes_nothing_on_every_namespace(
    saved_blocks: SavedBlocks, hcp_mode: Any, hcp_bucket: str, staging_bucket: str, tmp_path: Path, kind: str
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, **KINDS[kind])
    make_tree(tmp_path / "src", 6)
    overrides = {"settings_overrides": {"staging_bucket": staging_bucket}} if kind in ("retention", "staging-namespace") else {}
    params = dict(source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix=PREFIX, job=f"quiet-{kind}", **overrides)
    first = await bulk_upload(**params, **saved_blocks.params())
    assert first["committed"] == 6
    if kind == "held":
        hcp_mode.set_hold(hcp_bucket, PREFIX + "top-0000.txt")
    union, payload = covered(hcp_mode, hcp_bucket)
    assert union == payload and len(payload) == 6

    hcp_mode.reset_counts()
    again = await bulk_upload(**params, **saved_blocks.params())
    assert writes(hcp_mode) == {}, "nothing to commit: no PUT, no DELETE"
    assert again["outcome"] == "committed" and again["committed"] == 0 and again["record"].startswith("unchanged")
    assert covered(hcp_mode, hcp_bucket)[0] == payload


@pytest.mark.timeout(240)
async def test_a_retained_changed_file_is_sent_once_per_retry_step(
    saved_blocks: SavedBlocks, hcp_mode: Any, hcp_bucket: str, staging_bucket: str, tmp_path: Path
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, retention="+10s")
    source = tmp_path / "src"
    files = make_tree(source, 4)
    params = dict(
        source_dir=str(source), bucket=hcp_bucket, prefix=PREFIX, job="short",
        settings_overrides={"staging_bucket": staging_bucket}, **saved_blocks.params(),
    )
    await bulk_upload(**params)
    changed = sorted(files)[0]
    (source / changed).write_bytes(b"new bytes of the changed file")

    hcp_mode.reset_counts()
    refused = await bulk_upload(**params)
    assert hcp_mode.request_counts[DATA_PUT] == 1, "sent once, refused"
    assert refused["retained_files"] == [PREFIX + changed]
    retry = datetime.fromisoformat(refused["retained_next_try"][PREFIX + changed].replace("Z", "+00:00")).timestamp()
    assert retry - time.time() < 12, "tried again when its 10 s of retention end"

    hcp_mode.reset_counts()
    waiting = await bulk_upload(**params)
    assert hcp_mode.request_counts[DATA_PUT] == 0 and writes(hcp_mode) == {}, "not sent while it waits"
    assert waiting["retained_waiting"] == 1 and waiting["retained_next_try"] == refused["retained_next_try"]

    await asyncio.sleep(max(0.0, retry - time.time()) + 1.5)
    hcp_mode.reset_counts()
    placed = await bulk_upload(**params)
    assert hcp_mode.request_counts[DATA_PUT] >= 1 and placed["retained"] == 0 and "retained_waiting" not in placed
    assert hcp_mode.stored(hcp_bucket, PREFIX + changed) == {PREFIX + changed: b"new bytes of the changed file"}
    union, payload = covered(hcp_mode, hcp_bucket)
    assert union == payload


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_cooperative_runs_do_not_claim_a_retained_file_before_its_next_try(
    saved_blocks: SavedBlocks, hcp_mode: Any, hcp_bucket: str, staging_bucket: str, tmp_path: Path,
    backend: str, request: pytest.FixtureRequest,
) -> None:
    """Cooperative runs share the job through the tracker's claims. A changed file whose archived
    object is retained stays ``error`` in the tracker until its next try: the claims, not only
    the sync, must leave it out, or every cooperative night sends it again."""
    lease = 3.0  # short claims: the next night comes long after a night's claims ran out
    if backend == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        await HCPTracker(postgres_dsn=SecretStr(dsn), lease_seconds=lease).save(saved_blocks.tracker, overwrite=True)
    else:
        await HCPTracker(sqlite_path=str(saved_blocks.tracker_path), lease_seconds=lease).save(
            saved_blocks.tracker, overwrite=True
        )
    hcp_mode.configure_namespace(hcp_bucket, retention="+1y")
    source = tmp_path / "src"
    files = make_tree(source, 4)
    params = dict(
        source_dir=str(source), bucket=hcp_bucket, prefix=PREFIX, job=f"coop-{uuid.uuid4().hex[:8]}",
        cooperative=True, settings_overrides={"staging_bucket": staging_bucket}, **saved_blocks.params(),
    )
    assert (await bulk_upload(**params))["committed"] == 4
    changed = sorted(files)[0]
    (source / changed).write_bytes(b"new bytes of the changed file")

    hcp_mode.reset_counts()
    refused = await bulk_upload(**params)
    assert hcp_mode.request_counts[DATA_PUT] == 1, "sent once, refused"
    assert refused["retained_files"] == [PREFIX + changed] and refused["retained_waiting"] == 1

    await asyncio.sleep(lease + 0.5)  # night 2's claim on the refused file has run out
    hcp_mode.reset_counts()
    waiting = await bulk_upload(**params)
    assert hcp_mode.request_counts[DATA_PUT] == 0 and writes(hcp_mode) == {}, "not claimed while it waits"
    assert waiting["outcome"] == "committed" and waiting["retained_waiting"] == 1
    assert waiting["retained"] == 0, "not claimed, so not placed (and refused) again"
    assert hcp_mode.stored(hcp_bucket, PREFIX + changed) == {PREFIX + changed: files[changed]}, "first bytes kept"
    where = request.getfixturevalue("postgres_dsn") if backend == "postgres" else str(saved_blocks.tracker_path)
    with create_tracker(where, job=str(params["job"])) as tracker:  # type: ignore[attr-defined]
        assert [(key.rsplit("/", 1)[-1], found.step) for key, found in tracker.retained_files()] == [
            (changed.rsplit("/", 1)[-1], 1)
        ], "refused once: no claim took it while it waited"


def test_without_a_known_end_the_wait_grows_from_a_night_to_a_week_to_a_month() -> None:
    now = 1_000_000.0
    assert [next_try(step, None, now) - now for step in (1, 2, 3, 4)] == [NIGHT, WEEK, MONTH, MONTH]
    assert next_try(1, now + 10, now) == now + 10, "at the retention's end when the namespace tells it"
    assert next_try(2, now - 10, now) == now + WEEK, "an end passed (still refused: a hold) waits its step"
