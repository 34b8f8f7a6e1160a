"""The operator's view, read back from a real Prefect API: artifact keys per job with a
history, the summary's words, progress through the commit, logs that scale, run names and tags."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)

from rahcp_prefect.flows import bulk_download, bulk_upload, cleanup_staging
from rahcp_prefect.flows.artifacts import artifact_key, summary_key
from rahcp_prefect.tracker import create_tracker

from .conftest import SavedBlocks, make_tree


async def _versions(key: str) -> list[Any]:
    """Every artifact stored under ``key``, oldest first."""
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return sorted(found, key=lambda a: a.created)


async def _flow_run(run_id: UUID) -> Any:
    async with get_client() as client:
        return await client.read_flow_run(run_id)


async def _logs(run_id: UUID) -> list[str]:
    """Every log line of the flow run and its task runs, as the UI shows them."""
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()  # logs travel in batches: wait for the last ones
    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return [log.message for log in logs]


async def test_two_runs_of_one_job_keep_one_history_per_key_and_say_where_data_went(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src, 12)
    params = dict(source_dir=str(src), bucket=hcp_bucket, prefix="nightly/2026/01/", job="nightly scans", **saved_blocks.params())
    first = await bulk_upload(**params, return_state=True)
    (src / "late.txt").write_bytes(b"late arrival")
    second = await bulk_upload(**params, return_state=True)
    assert first.is_completed() and second.is_completed()

    summaries = await _versions("summary-nightly-scans")
    assert len(summaries) == 2, "two runs of one job: two versions under one key"
    assert [a.flow_run_id for a in summaries] == [first.state_details.flow_run_id, second.state_details.flow_run_id]
    assert len(await _versions("progress-nightly-scans")) == 2
    assert len(await _versions("job-status-nightly-scans")) == 2
    assert summaries[0].type == "markdown"

    endpoint = hcp_credentials["endpoint"]
    first_text, second_text = str(summaries[0].data), str(summaries[1].data)
    assert f"**Committed 12 files (" in first_text
    assert f"to `{hcp_bucket}/nightly/2026/01/` on {endpoint}**" in first_text
    assert f"**Committed 1 file (12 B) to `{hcp_bucket}/nightly/2026/01/` on {endpoint}; 12 unchanged**" in second_text
    for phase in ("| scan |", "| transfer |", "| verify |", "| commit |"):
        assert phase in first_text, phase
    assert f"- source folder: `{src}`" in first_text
    for window in ("files in flight", "copies in flight during the commit"):  # the windows' ranges
        assert re.search(rf"\| {window} \(adaptive window\) \| \d+( to \d+)? \|", first_text), window
    assert "rahcp-prefect errors" not in first_text, "no failure: no failure list"
    result = await second.result()
    assert set(result["phases"]) == {"scan", "transfer", "verify", "commit"}
    assert result["phases"]["commit"]["files"] == 1

    run = await _flow_run(first.state_details.flow_run_id)
    assert run.name == f"upload {src} -> {hcp_bucket}/nightly/2026/01/"
    assert {"rahcp", f"bucket:{hcp_bucket}"} <= set(run.tags)


async def test_failed_run_shows_relative_keys_first_20_and_how_many_more(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for index in range(40):
        folder = "refused" if index < 30 else "fine"
        (src / folder).mkdir(parents=True, exist_ok=True)
        (src / folder / f"f-{index:03d}.txt").write_bytes(b"x" * (index + 1))
    hcp_emulator.faults.add("data", method="PUT", path=r"/refused/", status=403, count=None)
    state = await bulk_upload(
        source_dir=str(src), bucket=hcp_bucket, prefix="final/", job="refusals", return_state=True, **saved_blocks.params()
    )
    assert state.is_failed()
    text = str((await _versions("summary-refusals"))[-1].data)
    assert f"**Rolled back: nothing changed in `{hcp_bucket}/final/` on " in text and ", 30 files failed**" in text
    assert "| `refused/f-000.txt` | PresignedTransferError: 403 Forbidden for refused/f-000.txt |" in text
    assert text.count("| `refused/") == 20
    assert "... and 10 more. `rahcp-prefect errors --job refusals --tracker-block" in text
    assert ".rahcp-staging" not in text
    # the run's state message (the exception) names the same keys, also without staging paths
    message = str(state.message)
    assert "30 file(s) failed to upload (refused/f-000.txt: PresignedTransferError: 403 Forbidden for refused/f-000.txt;" in message
    assert ".rahcp-staging" not in message
    assert "transferred" not in text and "| uploaded |" not in text
    assert "| reached staging, deleted by the rollback | 10 |" in text



async def test_failed_download_summary_and_the_errors_command_list_every_failure(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, capsys: Any
) -> None:
    for index in range(25):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"in/{'bad' if index < 22 else 'ok'}/{index:02d}.txt", Body=b"z")
    hcp_emulator.faults.add("data", method="GET", path=r"/in/bad/", status=400, count=None)
    dest = tmp_path / "dest"
    state = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="in/", job="restore-bad", return_state=True, **saved_blocks.params()
    )
    assert state.is_failed()
    text = str((await _versions("summary-restore-bad"))[-1].data)
    assert f"**Failed: `{dest.resolve()}` untouched, 22 files failed;" in text
    assert "| reached staging, kept for the next run | 3 |" in text
    assert text.count("| `bad/") == 20 and "... and 2 more." in text

    from rahcp_prefect.cli import main

    capsys.readouterr()
    assert main(["errors", "--job", "restore-bad", "--tracker", str(saved_blocks.tracker_path)]) == 0
    out = capsys.readouterr()
    rows = [line.split("\t") for line in out.out.splitlines()]
    assert [key for key, _reason in rows] == [f"bad/{index:02d}.txt" for index in range(22)]
    assert all("Bad Request" in reason for _key, reason in rows)
    assert "22 failed file(s) in job restore-bad" in out.err


async def test_5000_failing_files_log_fewer_than_100_lines(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, caplog: Any
) -> None:
    src = tmp_path / "src" / "bad"
    src.mkdir(parents=True)
    for index in range(5000):
        (src / f"{index:05d}.txt").write_bytes(b"%d" % index)
    hcp_emulator.faults.add("data", method="PUT", path=r"/bad/", status=400, count=None)
    caplog.set_level("WARNING", logger="rahcp_prefect")
    state = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="p/", batch_size=1000,
        return_state=True, **saved_blocks.params(),
    )
    assert state.is_failed()
    lines = await _logs(state.state_details.flow_run_id)
    failure_lines = [line for line in lines if line.startswith("Failed: ")]
    assert len(failure_lines) == 20, "the first 20 failures, one line each"
    # workers finish in any order: each line names one failed file of the prefix, relative to it
    assert all(re.match(r"Failed: bad/\d{5}\.txt: PresignedTransferError", line) for line in failure_lines)
    assert len(set(failure_lines)) == 20
    assert any(line.startswith("5000 file(s) failed in all (20 logged above)") for line in lines)
    assert len(lines) < 100, f"{len(lines)} log lines for 5,000 failed files"
    sdk_lines = [r for r in caplog.records if r.name.startswith("rahcp_prefect.client")]
    assert len(sdk_lines) < 100, "the SDK does not log each failed file either"


async def test_progress_goes_through_the_commit_phase_with_counts_and_log_lines(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", 20)
    # Each server-side copy takes 0.25 s, one at a time: the commit lasts about 5 s.
    hcp_emulator.faults.add("api", method="POST", path=r"/copy$", delay=0.25, count=None)
    run = asyncio.ensure_future(
        bulk_upload(
            source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="slow/", job="slow-commit",
            settings_overrides={"commit_concurrency": 1, "log_interval": 1.0},
            return_state=True, **saved_blocks.params(),
        )
    )
    seen: list[str] = []
    while not run.done():
        for artifact in await _versions("progress-slow-commit"):
            if artifact.description and artifact.description not in seen:
                seen.append(artifact.description)
        await asyncio.sleep(0.1)
    state = await run
    assert state.is_completed()
    during = [text for text in seen if "commit (2 of 2): " in text]
    assert any(" of 20 objects" in text and not text.split("commit (2 of 2): ")[1].startswith("20 ") for text in during), seen
    assert any("ETA" in text for text in during)
    final = (await _versions("progress-slow-commit"))[-1]
    assert final.description.endswith(": committed") and float(final.data) == 100.0
    commit_lines = [line for line in await _logs(state.state_details.flow_run_id) if "commit (2 of 2): " in line]
    assert commit_lines, "a log line every log_interval during the commit"


async def test_download_summary_names_the_destination_and_runs_are_named_and_tagged(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    for index in range(5):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"d/{index}.txt", Body=b"y" * 100)
    dest = tmp_path / "restore"
    state = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="d/", job="restore", return_state=True, **saved_blocks.params()
    )
    assert state.is_completed()
    text = str((await _versions("summary-restore"))[-1].data)
    assert f"**Downloaded 5 files (500 B) from `{hcp_bucket}/d/` on " in text and f"into `{dest.resolve()}`**" in text
    assert f"- destination folder: `{dest.resolve()}`" in text
    run = await _flow_run(state.state_details.flow_run_id)
    assert run.name == f"download {hcp_bucket}/d/ -> {dest}"
    assert {"rahcp", f"bucket:{hcp_bucket}"} <= set(run.tags)


async def test_dry_run_and_cleanup_publish_keyed_artifacts(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", 4)
    dry = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="p/", dry_run=True, job="dry",
        return_state=True, **saved_blocks.params(),
    )
    [table] = await _versions("dry-run-dry")
    assert table.flow_run_id == dry.state_details.flow_run_id
    assert f"would upload to {hcp_bucket}/p/ 4 files" in table.description
    assert "p/" not in str(table.data), "keys relative to the prefix"
    assert (await _flow_run(dry.state_details.flow_run_id)).name.endswith("(dry run)")

    # A crashed run's staging: an open job idle long enough.
    tracker = create_tracker(saved_blocks.tracker_path, job="crashed")
    tracker.open_job(bucket=hcp_bucket, staging_prefix=".rahcp-staging/dead-run/", final_prefix="c/")
    tracker.close()
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=".rahcp-staging/dead-run/a.txt", Body=b"a")
    cleaned = await cleanup_staging(
        credentials_block=saved_blocks.credentials, tracker_block=saved_blocks.tracker, older_than_hours=0,
        return_state=True,
    )
    [card] = await _versions(artifact_key(f"cleanup-staging-{hcp_bucket}"))
    assert card.flow_run_id == cleaned.state_details.flow_run_id
    assert card.description == f"cleanup-staging of {hcp_bucket}: removed 1 item(s)"
    assert {"rahcp", f"bucket:{hcp_bucket}"} <= set((await _flow_run(cleaned.state_details.flow_run_id)).tags)
    assert summary_key("nightly scans") == "summary-nightly-scans"
